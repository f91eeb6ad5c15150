"""Sentence banks for the demo corpus: healthcare and business, English and Vietnamese."""

EN_ORGS = [
    "Riverside Health",
    "Northwind Clinics",
    "Lakeview Medical Group",
    "Summit Care Partners",
    "Harbor Point Hospital",
    "Evergreen Family Practice",
    "Bluebird Pharmacy",
    "Crescent Insurance",
    "Maple Street Dental",
    "Pioneer Labs",
]
EN_DEPTS = [
    "billing",
    "radiology",
    "emergency",
    "outpatient",
    "pharmacy",
    "nursing",
    "scheduling",
    "claims",
    "cardiology",
    "pediatrics",
]
EN_METRICS = [
    "average wait times",
    "claim denials",
    "readmission rates",
    "no-show appointments",
    "supply costs",
    "overtime hours",
    "prescription errors",
    "patient complaints",
    "turnaround time for lab results",
    "billing disputes",
]
EN_CONDITIONS = [
    "type 2 diabetes",
    "high blood pressure",
    "asthma",
    "chronic back pain",
    "seasonal allergies",
    "migraine",
    "atrial fibrillation",
    "eczema",
    "sleep apnea",
    "high cholesterol",
    "osteoarthritis",
    "anemia",
]
EN_TREATMENTS = [
    "a change in diet",
    "regular physical activity",
    "a new prescription",
    "physical therapy",
    "a follow-up blood test",
    "a referral to a specialist",
    "a home monitoring device",
    "a medication review",
    "an allergy test",
    "weight management",
]
EN_CLINICIANS = [
    "primary care doctor",
    "pharmacist",
    "nurse practitioner",
    "cardiologist",
    "dermatologist",
    "care coordinator",
]
EN_PERIODS = ["quarter", "year", "six months", "two quarters", "fiscal year", "eighteen months"]
EN_ROLES = [
    "finance director",
    "operations manager",
    "chief nursing officer",
    "practice manager",
    "head of compliance",
    "product lead",
]

EN_SENTENCES = [
    "{org} announced that its {dept} team reduced {metric} by {pct}% over the last {period}.",
    "Patients with {condition} should discuss {treatment} with their {clinician} before making any change.",
    "According to the {role} at {org}, the new scheduling system paid for itself within one {period}.",
    "The {dept} department now reviews {metric} every week and shares the results with all staff.",
    "Experts recommend {treatment} for many adults living with {condition}, although results vary.",
    "When {metric} rise, the first step is to understand where in the process the delays begin.",
    "{org} plans to hire {num} additional staff for its {dept} unit before the end of the {period}.",
    "A short conversation with a {clinician} can prevent many of the complications linked to {condition}.",
    "Insurers increasingly ask providers to show how {treatment} affects long-term costs.",
    "Small clinics often lack the data teams needed to track {metric} in real time.",
    "The board of {org} approved a budget of {num} thousand dollars to modernise {dept} operations.",
    "Many patients do not know that {condition} can be managed well with {treatment}.",
    "Our {role} explained that transparent pricing builds trust with patients and employers alike.",
    "In a survey of {num} patients, most said that clear discharge instructions mattered more than waiting room comfort.",
    "Staff training on {dept} procedures lowered {metric} at three of the five sites.",
    "If you notice new symptoms of {condition}, write them down and bring the list to your next visit.",
    "The pilot at {org} showed that reminders by text message cut {metric} by nearly {pct}%.",
    "Revenue cycle leaders say that clean documentation is the cheapest way to reduce {metric}.",
    "Telehealth visits made it easier for rural patients with {condition} to see a {clinician}.",
    "The report compares {metric} across {num} hospitals and finds large differences between regions.",
    "Before signing a vendor contract, the {role} asked for references from at least three similar practices.",
    "Family members play an important role in helping patients with {condition} stick to {treatment}.",
    "Analysts expect spending on {dept} software to grow by {pct}% next {period}.",
    "The clinic extended its opening hours so that working parents could bring children in after school.",
    "Good handoffs between shifts reduce {metric} and make the work less stressful for nurses.",
    "Each location now publishes its {metric} on a simple dashboard that anyone on the team can read.",
]
EN_TITLES = [
    "How {org} cut {metric}",
    "Living with {condition}: what helps",
    "A practical guide to {treatment}",
    "Why {metric} matter for small practices",
    "Notes from the {dept} team at {org}",
]

VI_ORGS = [
    "Bệnh viện Đa khoa Sông Hồng",
    "Phòng khám Hòa Bình",
    "Công ty Dược Minh Tâm",
    "Trung tâm Y tế Quận 3",
    "Bệnh viện Nhi Trung ương",
    "Công ty Bảo hiểm An Phát",
    "Phòng khám Nha khoa Ánh Dương",
    "Chuỗi nhà thuốc Phúc Khang",
]
VI_CONDITIONS = [
    "tiểu đường",
    "tăng huyết áp",
    "hen suyễn",
    "đau lưng mãn tính",
    "viêm da cơ địa",
    "đau nửa đầu",
    "rối loạn giấc ngủ",
    "mỡ máu cao",
    "thiếu máu",
    "viêm khớp",
]
VI_TREATMENTS = [
    "thay đổi chế độ ăn",
    "tập thể dục đều đặn",
    "dùng thuốc theo đơn",
    "vật lý trị liệu",
    "xét nghiệm máu định kỳ",
    "khám chuyên khoa",
    "theo dõi huyết áp tại nhà",
]
VI_DEPTS = [
    "khoa cấp cứu",
    "phòng tài chính",
    "khoa nhi",
    "bộ phận chăm sóc khách hàng",
    "khoa tim mạch",
    "phòng kế hoạch",
]
VI_SENTENCES = [
    "{org} cho biết thời gian chờ khám trung bình đã giảm {pct}% trong năm qua.",
    "Người bệnh {condition} nên trao đổi với bác sĩ trước khi {treatment}.",
    "Theo lãnh đạo {dept}, việc đặt lịch hẹn trực tuyến giúp giảm tình trạng quá tải vào buổi sáng.",
    "Các chuyên gia khuyên người trưởng thành mắc {condition} nên {treatment} và tái khám đúng hẹn.",
    "Năm nay {org} dự kiến tuyển thêm {num} nhân viên cho {dept}.",
    "Nhiều bệnh nhân chưa biết rằng {condition} có thể kiểm soát tốt nếu được phát hiện sớm.",
    "Chi phí vận hành của {dept} đã giảm đáng kể sau khi áp dụng phần mềm quản lý mới.",
    "Gia đình đóng vai trò quan trọng trong việc giúp người bệnh {condition} duy trì việc {treatment}.",
    "Khảo sát trên {num} khách hàng cho thấy phần lớn đánh giá cao sự tận tình của nhân viên y tế.",
    "{org} vừa ký hợp đồng hợp tác với một công ty công nghệ để số hóa hồ sơ bệnh án.",
    "Bác sĩ nhắc rằng người bệnh không nên tự ý ngừng thuốc khi các triệu chứng đã giảm.",
    "Doanh thu của {org} trong quý này tăng {pct}% so với cùng kỳ năm trước.",
    "Việc đào tạo lại quy trình tiếp nhận giúp {dept} phục vụ người dân nhanh hơn.",
    "Trong mùa nắng nóng, người cao tuổi mắc {condition} cần uống đủ nước và nghỉ ngơi hợp lý.",
    "Các doanh nghiệp nhỏ thường gặp khó khăn khi lựa chọn gói bảo hiểm sức khỏe cho nhân viên.",
    "Phòng khám đã kéo dài giờ làm việc vào buổi tối để thuận tiện cho người đi làm.",
]
VI_TITLES = ["{org}: những thay đổi trong năm", "Sống khỏe với {condition}", "Hướng dẫn {treatment} đúng cách"]

OTHER_LANG_DOCS = {
    "de": [
        "Die Klinik hat ihre Öffnungszeiten verlängert, damit berufstätige Eltern ihre Kinder nach der Schule bringen können.",
        "Patienten mit Bluthochdruck sollten vor jeder Änderung der Medikamente mit ihrem Hausarzt sprechen.",
        "Die Geschäftsführung plant, die Verwaltungskosten im nächsten Jahr deutlich zu senken.",
    ],
    "fr": [
        "La clinique a prolongé ses horaires afin que les parents qui travaillent puissent venir après l'école.",
        "Les patients atteints d'asthme doivent consulter leur médecin avant de modifier leur traitement.",
        "La direction prévoit de réduire les coûts administratifs au cours de l'année prochaine.",
    ],
    "es": [
        "La clínica amplió su horario para que los padres que trabajan puedan traer a sus hijos después de la escuela.",
        "Los pacientes con diabetes deben hablar con su médico antes de cambiar cualquier medicamento.",
        "La dirección planea reducir los costos administrativos durante el próximo año.",
    ],
}

FIRST_NAMES = [
    "James",
    "Maria",
    "Robert",
    "Linda",
    "David",
    "Aisha",
    "Wei",
    "Carlos",
    "Emily",
    "Priya",
    "Thomas",
    "Sofia",
]
LAST_NAMES = [
    "Johnson",
    "Garcia",
    "Nguyen",
    "Smith",
    "Patel",
    "Kim",
    "Brown",
    "Lopez",
    "Walker",
    "Chen",
    "Davis",
    "Martin",
]
VI_NAMES = ["Nguyễn Văn An", "Trần Thị Bình", "Lê Minh Châu", "Phạm Quốc Dũng", "Hoàng Thu Hà", "Võ Thanh Tùng"]
STREETS = ["Oak Street", "Maple Avenue", "Cedar Lane", "Lakeshore Drive", "Hillcrest Road", "Pine Court"]
CITIES = ["Springfield, IL 62704", "Austin, TX 73301", "Columbus, OH 43004", "Denver, CO 80202", "Tampa, FL 33602"]

BOILERPLATE = [
    "This website uses cookies to improve your experience. By continuing you accept our cookie policy.",
    "Home | About us | Services | Careers | Contact",
    "Privacy policy | Terms of use | Accessibility",
    "Subscribe to our newsletter",
    "Share this article",
    "© 2024 All rights reserved.",
]
SPAM_LINES = [
    "BUY CHEAP MEDS ONLINE NOW!!! BEST PRICES GUARANTEED",
    "CLICK HERE >>> FREE TRIAL >>> NO PRESCRIPTION NEEDED",
    "WIN A FREE IPHONE TODAY ONLY",
    "LIMITED OFFER!!! 90% OFF!!!",
]
KEYWORDS = [
    "pharmacy",
    "cheap",
    "pills",
    "online",
    "discount",
    "insurance",
    "quote",
    "best",
    "doctor",
    "clinic",
    "loan",
    "fast",
]

CHAT_DOMAINS = {
    "cardiology": {
        "urgent": [
            "I have crushing chest pain spreading to my left arm and I feel sweaty. What should I do?",
            "My heart is racing at 180 beats per minute and I feel faint. Is this serious?",
            "My father suddenly has shortness of breath and pressure in his chest. What should we do?",
        ],
        "routine": [
            "My blood pressure readings at home are slightly higher in the morning. Should I worry?",
            "Can I keep drinking coffee if I take medication for high cholesterol?",
            "How often should I check my blood pressure after starting a new medication?",
        ],
    },
    "dermatology": {
        "urgent": [
            "My face and lips are swelling quickly after a new medication and it is hard to breathe.",
            "A red, hot area on my leg is spreading fast and I have a fever. What should I do?",
            "I have blisters all over my body and my skin is peeling after starting an antibiotic.",
        ],
        "routine": [
            "I have a dry itchy patch on my elbow that comes and goes. What can help?",
            "Which sunscreen is best for sensitive skin that breaks out easily?",
            "Is it normal for a mole to look slightly darker in summer?",
        ],
    },
}
CHAT_ANSWERS = {
    "urgent": [
        "These symptoms can be a medical emergency. Call your local emergency number now or go to the nearest emergency department; do not drive yourself.",
        "Please seek emergency care immediately. While you wait for help, stay seated, keep calm and have someone stay with you.",
        "This needs urgent attention today. Go to an emergency department now, and bring a list of the medicines you take.",
    ],
    "routine": [
        "This is usually not an emergency. Keep a simple diary of your symptoms for two weeks and share it with your clinician at your next routine visit.",
        "Small changes like this are common. Track it, keep your regular follow-up appointment, and contact your clinic sooner if it gets worse.",
        "You can manage this at home for now. Gentle care, enough sleep and regular check-ups usually help; book a routine appointment if it does not improve.",
    ],
}
VI_CHAT = [
    (
        "Tôi bị đau ngực dữ dội lan ra cánh tay trái, tôi nên làm gì?",
        "Đây có thể là tình trạng cấp cứu. Hãy gọi 115 ngay hoặc đến khoa cấp cứu gần nhất.",
        "urgent",
        "cardiology",
    ),
    (
        "Huyết áp của tôi buổi sáng hơi cao, tôi có cần lo lắng không?",
        "Bạn nên ghi lại chỉ số huyết áp mỗi ngày trong hai tuần và mang theo khi tái khám định kỳ.",
        "routine",
        "cardiology",
    ),
    (
        "Da tôi bị ngứa và khô ở khuỷu tay, nên làm gì?",
        "Bạn có thể dùng kem dưỡng ẩm không mùi hai lần mỗi ngày và hẹn khám da liễu nếu không đỡ.",
        "routine",
        "dermatology",
    ),
    (
        "Mặt và môi tôi sưng nhanh sau khi uống thuốc mới, khó thở.",
        "Đây là dấu hiệu dị ứng nặng. Hãy gọi cấp cứu 115 ngay lập tức.",
        "urgent",
        "dermatology",
    ),
]
INSTRUCTIONS = [
    (
        "Summarise the following note for a billing specialist.",
        "Patient seen for {condition}; plan includes {treatment}.",
        "Visit for {condition}. Plan: {treatment}. No procedures billed beyond the office visit.",
    ),
    (
        "Write a short reminder message for a patient about their appointment.",
        "",
        "Hello! This is a reminder of your appointment next week. Please arrive ten minutes early and bring your insurance card.",
    ),
    (
        "Explain {condition} to a patient in plain language.",
        "",
        "{condition} is a long-term condition that many people manage well. Regular check-ups and {treatment} usually help.",
    ),
    (
        "List three ways a clinic can reduce {metric}.",
        "",
        "1. Send reminders before visits. 2. Review the process weekly with staff. 3. Share results on a simple dashboard.",
    ),
    (
        "Classify the urgency of this message as urgent or routine.",
        "I have a mild rash that has been there for a month.",
        "routine",
    ),
]

CHAT_CONTEXTS = [
    "I am {age} years old and otherwise healthy.",
    "My {relative} is {age} and lives alone.",
    "I have been taking {drug} for about {n} months.",
    "I work night shifts and sleep badly.",
    "I had a check-up {n} weeks ago and everything looked fine.",
    "We are travelling abroad this week.",
    "I am pregnant, in week {n}.",
    "I was diagnosed with {condition} a few years ago.",
    "My doctor's office is closed until Monday.",
    "I started a new job last month and I am under a lot of stress.",
]
CHAT_DETAILS = [
    "It started about {n} hours ago.",
    "It has been getting worse since yesterday evening.",
    "I already took {drug} but it did not help.",
    "Nothing like this has happened to me before.",
    "I also feel a bit dizzy when I stand up.",
    "There is no fever as far as I can tell.",
    "It seems to come and go during the day.",
    "My {relative} thinks I am overreacting.",
]
CHAT_QUESTIONS = [
    "What should I do?",
    "Do I need to see someone today?",
    "Can this wait until my next appointment?",
    "Is this something to worry about?",
    "Should I call the clinic or go to the hospital?",
]
RELATIVES = ["mother", "father", "husband", "wife", "grandmother", "neighbour", "son", "daughter"]
DRUGS = ["ibuprofen", "paracetamol", "metformin", "lisinopril", "an antihistamine", "atorvastatin"]

# Words sprinkled into generated sentences so that documents built from the same templates
# do not share long word spans (real documents rarely share 13-grams unless one copies the other).
EN_FILLERS = [
    "notably",
    "reportedly",
    "also",
    "often",
    "recently",
    "still",
    "clearly",
    "already",
    "indeed",
    "generally",
    "usually",
    "now",
    "again",
    "largely",
    "partly",
    "mostly",
    "simply",
    "actually",
    "certainly",
    "typically",
    "frankly",
    "gradually",
    "locally",
    "formally",
    "quietly",
    "openly",
    "finally",
    "early",
    "jointly",
    "briefly",
    "perhaps",
    "rightly",
    "mainly",
    "surely",
    "oddly",
    "slowly",
    "quickly",
    "broadly",
    "fairly",
    "nearly",
    "rarely",
    "widely",
    "deeply",
    "firmly",
    "happily",
    "sadly",
    "wisely",
    "strictly",
    "loosely",
    "plainly",
]
VI_FILLERS = [
    "cũng",
    "thường",
    "vẫn",
    "đã",
    "đang",
    "rất",
    "khá",
    "hiện",
    "nay",
    "thật",
    "luôn",
    "chỉ",
    "đều",
    "mới",
    "vừa",
    "sẽ",
    "hơn",
    "nữa",
    "lại",
    "ngay",
    "liền",
    "chắc",
    "hẳn",
    "quả",
    "thì",
    "mà",
    "cả",
    "nhiều",
    "ít",
    "chưa",
    "từng",
    "vốn",
    "càng",
    "bỗng",
    "dần",
]

MAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me"]
