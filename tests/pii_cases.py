# ruff: noqa: E501 - labelled sentences are kept whole, one per line
"""Labelled cases for the default pii profile, written for this project: every class of issue 33's
point 1, both ways. `KEEP`: text with no private person's data, which must come out unchanged.
`REMOVE`: (text, value) pairs where `value` is a private person's data and must be gone from the output.
Each entry: (class, text, language)."""

from __future__ import annotations

KEEP = [
    # a question typed in capitals: case says nothing there, so "DO BỆNH", "CAO VỀ" are no family names
    ("all capitals", "XIN HỎI : BỊ Ù TAI THƯỜNG XUYÊN LÀ DO BỆNH GÌ ?", "vi"),
    ("all capitals", "CHÀO BÁC SĨ , CHO EM HỎI SỐT CAO VỀ CHIỀU CÓ PHẢI DO THIẾU CHẤT KHÔNG ?", "vi"),
    # fictional or example names in word problems, stories and code samples
    (
        "word problem",
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
        "en",
    ),
    (
        "word problem",
        "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
        "en",
    ),
    (
        "word problem",
        "Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs. Her parents decided to give her $15 for that purpose, and her grandparents twice as much as her parents.",
        "en",
    ),
    (
        "word problem",
        "James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?",
        "en",
    ),
    (
        "word problem",
        "Mrs. Snyder used to spend 40% of her monthly income on rent and utilities. Her salary was recently increased by $600 so now her rent and utilities only amount to 25% of her monthly income.",
        "en",
    ),
    ("word problem", "Lan có 5 quả táo, chị Mai cho Lan thêm 3 quả. Hỏi Lan có tất cả bao nhiêu quả táo?", "vi"),
    (
        "story",
        "Once upon a time, a girl named Lily lived near the forest. One Monday in March, Lily found a tiny dragon in Oakwood.",
        "en",
    ),
    ("code sample", "Search the table for a value in one column.\n\nTable Name: customers\nSearch Value: John", "en"),
    (
        "code sample",
        "Write a function that greets a user.\n\ndef greet(name):\n    return f'Hello, {name}!'\n\nprint(greet('Alice'))",
        "en",
    ),
    ("code sample", "Convert this CSV to JSON:\nname,age,job\nAlice,30,Engineer\nBob,25,Designer", "en"),
    ("code sample", "Create a dictionary with the following keys and values\n\nKey1 : Value1, Key2 : Value2", "en"),
    # public figures, places, organisations, historical dates in general knowledge
    (
        "public figure",
        "Abraham Lincoln, the 16th president of the United States, was assassinated in April 1865.",
        "en",
    ),
    ("public figure", "Who was Marie Curie and what did she discover?", "en"),
    ("public figure", "The physicist Albert Einstein published the theory of relativity in 1905.", "en"),
    ("public figure", "Nhà thơ Nguyễn Du là tác giả của Truyện Kiều.", "vi"),
    ("public figure", "Vua Lý Thái Tổ dời đô từ Hoa Lư về Thăng Long vào năm 1010.", "vi"),
    (
        "place",
        "The Great Lakes are Superior, Michigan, Huron, Erie and Ontario, on the border of Canada and the United States.",
        "en",
    ),
    ("place", "Vạn Lý Trường Thành là công trình phòng thủ dài nhất thế giới, nằm ở Trung Quốc.", "vi"),
    (
        "place",
        "Why is alternating current (AC) superior to direct current (DC) for power transmission? Mars has a thin atmosphere.",
        "en",
    ),
    ("historical date", "The Declaration of Independence was signed on July 4, 1776 in Philadelphia.", "en"),
    ("historical date", "Chiến thắng Điện Biên Phủ diễn ra ngày 7 tháng 5 năm 1954.", "vi"),
    ("general knowledge", "Nitrogen makes up about 78% of the Earth's atmosphere, and oxygen about 21%.", "en"),
    # bare months, weekdays, years and relative dates
    (
        "bare date",
        "We usually go hiking in October, on a Saturday, and we went last week too. In 2019 it rained.",
        "en",
    ),
    ("bare date", "Convert the date 2023-04-05 to ISO 8601 with a time zone.", "en"),
    ("bare date", "Tháng 3 năm nay trời mưa nhiều; thứ Hai tuần sau chúng tôi sẽ họp.", "vi"),
    # quantities: ages in months, doses, frequencies, blood pressures, scores
    ("quantity", "Bé 2 tháng 10 ngày tuổi bị sốt, uống thuốc 3-4 lần/ngày có được không ạ?", "vi"),
    ("quantity", "Huyết áp của tôi là 117/45 - 120/55, như vậy có thấp không bác sĩ?", "vi"),
    ("quantity", "Take 1-2 tablets every 4-6 hours; blood pressure 120/80, the score was 3-1.", "en"),
    # documentation values
    ("documentation", "Send a test message to john@example.com from the server at 127.0.0.1 or localhost.", "en"),
    (
        "documentation",
        "```python\nconn = connect(host='192.168.1.10', user='admin', password='your-password')\n```",
        "en",
    ),
    ("documentation", "Set API_KEY = 'YOUR_API_KEY' and point the client at https://api.example.org/v1.", "en"),
    ("documentation", "curl -fsSL https://deb.nodesource.com/setup_18.x | sudo -E bash -", "en"),
    ("documentation", "The router answers on 10.0.0.1 and the docs use 192.0.2.15 and 2001:db8::1.", "en"),
    # dialogue role labels
    ("role label", "Khách hàng: Xin chào, tôi muốn hỏi về gói cước.\nNhân viên: Dạ, chào anh.", "vi"),
    ("role label", "Viết đoạn hội thoại.\nQ. Thủ đô của Pháp là gì?\nA. Paris.", "vi"),
    ("story", "Viết một câu chuyện ngắn về một cô gái tên là Sarah sống ở một ngôi làng nhỏ.", "vi"),
    ("word problem", "Năm nay Lan 10 tuổi, anh Nam hơn Lan 4 tuổi. Hỏi anh Nam bao nhiêu tuổi?", "vi"),
    ("historical figure", "Trần Hưng Đạo đánh bại quân Nguyên năm 1288 trên sông Bạch Đằng.", "vi"),
    ("code sample", '<label for="username">Username:</label><br>\n<label for="password">Password:</label><br>', "en"),
    ("code sample", "password = generate_password(8)\nprint(password)", "en"),
    ("code sample", 'String USER = "username";\nString PASS = "password";', "en"),
    ("table header", "Employee Name, Department, Salary\nJohn, Accounting, 8000\nJoe, Sales, 1000", "en"),
    ("documentation", "Log in with the password: The password is case-sensitive and required.", "en"),
    (
        "public figure",
        "The famous film director, Steven Spielberg, was born in Cincinnati. Steven Spielberg directed Jaws, released on June 20, 1975.",
        "en",
    ),
    (
        "history",
        "On June 28, 1914, Archduke Franz Ferdinand was shot in Sarajevo; a month later Austria-Hungary declared war on Serbia.",
        "en",
    ),
    (
        "role word, no name",
        "Customer Rating: 4.5 stars. Employee Engagement and Satisfaction rose; set the body in PT Serif and Open Sans.",
        "en",
    ),
    ("salutation, no name", "Dear Journal,\nToday I woke up early and went for a run by the river.", "en"),
    (
        "numbers",
        "Close prices: 2022-01-01,150.02,155.28; the ratio was 161.80,164.25 and libpng.so.2.1.0.9 was loaded.",
        "en",
    ),
    (
        "example e-mail",
        "Validate the address: string = 'example@gmail.com' or a@d.co, then write to info@acme.com.",
        "en",
    ),
]

REMOVE = [
    # a name in capitals, as forms write it, in a line that is not all capitals
    ("name in capitals", "Họ và tên: NGUYỄN VĂN AN, nhập viện khoa tim mạch.", "NGUYỄN VĂN AN", "vi"),
    # names with an identifier, a self-introduction, a salutation, a signature, a role
    ("name + phone", "Call Natalia at 415-555-0134 about the invoice.", "Natalia", "en"),
    ("self-introduction", "Hi, my name is Priya and I need help with my account.", "Priya", "en"),
    ("self-introduction", "Tên tôi là Thảo, tôi cần hỗ trợ về đơn hàng.", "Thảo", "vi"),
    ("salutation", "Dear Margaret,\nYour results are ready. Please come in next week.", "Margaret", "en"),
    ("signature", "Please reset my access to the shared drive.\n\nThanks,\nDerek", "Derek", "en"),
    ("role", "Patient Harold was admitted with chest pain.", "Harold", "en"),
    ("role", "Khách hàng: Trần Thị Bích phản ánh giao hàng chậm.", "Trần Thị Bích", "vi"),
    ("vocative", "Tuấn ơi, tối nay đi ăn không?", "Tuấn", "vi"),
    # full names of private people, with no other identifier
    ("full name", "I spoke with Jennifer Alvarez yesterday about the lease.", "Jennifer Alvarez", "en"),
    ("full name", "Theo lời kể của Nguyễn Văn Hùng, gia đình đã khai báo y tế.", "Nguyễn Văn Hùng", "vi"),
    # a name with a day-level date or an address
    ("name + date", "Anh Tuấn gọi lại lúc 14h ngày 5/3, xin đổi lịch hẹn.", "Tuấn", "vi"),
    ("name + date", "Sarah was admitted on March 5 and discharged two days later.", "Sarah", "en"),
    # contact details, ids, secrets: always
    ("contact", "Write to me at maria.gonzalez84@gmail.com.", "maria.gonzalez84@gmail.com", "en"),
    ("contact", "Số điện thoại của tôi là 0912 345 678.", "0912 345 678", "vi"),
    ("place of residence", "I live in Springfield, and my neighbor Tom helps me.", "Springfield", "en"),
    ("date of birth", "Date of birth: 03/14/1985. Please verify.", "03/14/1985", "en"),
    ("secret", "password = 'Xk9#mP2q!vL'", "Xk9#mP2q!vL", "en"),
    ("public ip", "The login came from 84.21.173.9 at night.", "84.21.173.9", "en"),
    ("address", "Ship it to 1428 Elm Street, Springfield, IL 62704.", "1428 Elm Street", "en"),
    # the formats of numbers and secrets people write
    ("secret told", "The Wi-Fi password at the cabin is letmein2024, don't share it.", "letmein2024", "en"),
    ("secret told", "mật khẩu wifi văn phòng mới là Falcon@348 nhé", "Falcon@348", "vi"),
    ("secret told", "I typed my password (Tr0ub4dor&3) three times.", "Tr0ub4dor&3", "en"),
    (
        "connection string",
        "DATABASE_URL=postgresql://svc_billing:Monkey568!@db.internal.corp:5432/app",
        "Monkey568!",
        "en",
    ),
    (
        "api key",
        "put the API key in the email thread: 6be36a88f1c04e2b9d7a5c3e1f0b2d4a",
        "6be36a88f1c04e2b9d7a5c3e1f0b2d4a",
        "en",
    ),
    (
        "api key",
        "Use sk-proj-Ab_9xYz12QwErTy34UiOp56AsDf78 in the config.",
        "sk-proj-Ab_9xYz12QwErTy34UiOp56AsDf78",
        "en",
    ),
    ("email with underscore", "Owner: deepa_murphy@comcast.net", "deepa_murphy", "en"),
    ("ssn", "SSN on file 262820952 for the application.", "262820952", "en"),
    ("mrn", "Medical record number: 53-279-509", "53-279-509", "en"),
    ("card", "Thẻ Napas 9704 0000 0000 0018 của khách bị khóa.", "9704 0000 0000 0018", "vi"),
    ("cccd", "Ông Lâm (CCCD số 038 055 039 875) đề nghị cập nhật hợp đồng.", "038 055 039 875", "vi"),
    # names in a note, a ticket, a chat
    ("role", "Progress note, 03/02/2024\nPt Amara reports better sleep since starting trazodone.", "Amara", "en"),
    ("role", "Login from 84.21.173.9 failed 5 times; account locked, customer Rajesh told to reset.", "Rajesh", "en"),
    ("family first", "Reported by: Martinez, Connor (connor.m@outlook.com)", "Martinez, Connor", "en"),
    ("signature", "I typed my password (Xk9#mP2q) three times.\n\nBest,\nKofi", "Kofi", "en"),
    ("salutation", "Good morning Deepa,\nyour refund was issued today.", "Deepa", "en"),
    ("given name again", "Khách hàng Nguyễn Văn Tuấn hỏi về đơn hàng.\nDạ em cập nhật rồi nhé Tuấn.", "Tuấn", "vi"),
    ("chat without diacritics", "e oi a Duy day, mail cua a la duy.tran88@gmail.com nhe", "Duy", "vi"),
]
