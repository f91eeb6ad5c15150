"""Labeled PII evaluation sets written for this project (not shipped as training data):

- `vietnamese()`: 360 Vietnamese sentences in four styles (news about patients and doctors,
  clinical notes, customer-service notes, chat) with names, addresses, dates, phones, ID and email;
- `clinical()`: 320 English clinical, billing and support-ticket notes covering every in-scope
  HIPAA Safe Harbor kind.

Each is built from hand-written templates whose slots are filled from hand-written value lists by a
seeded generator, so every span's offsets are known. The sentences also hold what must *not* be
redacted: initials (N.V.A.), Vietnamese words that start like a family name ("Trần nhà"), provinces,
hospitals named after people, clinical measurements, codes and doses. A few names are written with
no title or family-name cue ("Lan nói"), as real text has them.
Record: {"text", "lang", "style", "spans": [(start, end, kind)]}.
"""

from __future__ import annotations

import random
import re

SLOT = re.compile(r"\{([A-Z_0-9]+)\}")

# --- Vietnamese ----------------------------------------------------------------------------------
VI_SURNAMES = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
    "Đinh",
    "Đào",
    "Trương",
    "Lương",
    "Trịnh",
    "Mai",
    "Cao",
    "Lâm",
    "Tạ",
    "Hà",
]
VI_MIDDLE = [
    "Văn",
    "Thị",
    "Minh",
    "Hữu",
    "Đức",
    "Thanh",
    "Ngọc",
    "Quốc",
    "Xuân",
    "Thu",
    "Hoài",
    "Kim",
    "Gia",
    "Bảo",
    "Công",
    "Thùy",
    "Mỹ",
    "Tấn",
    "Trọng",
    "Phương",
]
VI_GIVEN = [
    "An",
    "Bình",
    "Châu",
    "Dũng",
    "Hùng",
    "Lan",
    "Hương",
    "Tuấn",
    "Hải",
    "Nam",
    "Phương",
    "Quỳnh",
    "Trang",
    "Linh",
    "Thảo",
    "Khoa",
    "Long",
    "Phúc",
    "Sơn",
    "Tâm",
    "Yến",
    "Nhung",
    "Hạnh",
    "Thắng",
    "Vy",
    "Nhi",
    "Khánh",
    "Đạt",
    "Hiếu",
    "Giang",
    "Loan",
    "Tùng",
    "Uyên",
    "Việt",
    "Oanh",
    "Kiên",
    "Duy",
    "Ngân",
]
VI_STREETS = [
    "Lê Lợi",
    "Nguyễn Huệ",
    "Trần Hưng Đạo",
    "Hai Bà Trưng",
    "Điện Biên Phủ",
    "Cách Mạng Tháng Tám",
    "Võ Văn Tần",
    "Pasteur",
    "Nguyễn Trãi",
    "Lý Thường Kiệt",
    "Kim Mã",
    "Láng Hạ",
    "Giải Phóng",
    "Hoàng Hoa Thám",
    "Bạch Đằng",
    "Phan Chu Trinh",
    "3 Tháng 2",
    "Tôn Đức Thắng",
    "Xuân Thủy",
    "Huế",
    "Trường Chinh",
    "Lạc Long Quân",
    "Nguyễn Văn Linh",
    "Quang Trung",
]
VI_WARDS = [
    "Bến Nghé",
    "Đa Kao",
    "Phạm Ngũ Lão",
    "Tân Định",
    "Dịch Vọng",
    "Láng Thượng",
    "Cống Vị",
    "Thạc Gián",
    "Hòa Cường Bắc",
    "An Khánh",
    "7",
    "12",
    "4",
    "Tân Phong",
    "Phú Mỹ",
]
VI_DISTRICTS = [
    "1",
    "3",
    "5",
    "10",
    "Ba Đình",
    "Cầu Giấy",
    "Hoàn Kiếm",
    "Đống Đa",
    "Bình Thạnh",
    "Tân Bình",
    "Hải Châu",
    "Ninh Kiều",
    "Thanh Khê",
    "Gò Vấp",
    "Long Biên",
]
VI_RURAL = [
    ("thôn", "Đông"),
    ("thôn", "Yên Lạc"),
    ("ấp", "Phú Hòa"),
    ("ấp", "3"),
    ("xóm", "Mới"),
    ("bản", "Lác"),
    ("thôn", "Hạ"),
    ("tổ", "5"),
]
VI_COMMUNES = ["Tân Lập", "Yên Phong", "Phú Xuân", "Hòa Tiến", "Mỹ Đức", "An Bình", "Quảng Thành", "Đông Sơn"]
VI_RURAL_DISTRICTS = ["Củ Chi", "Đông Anh", "Yên Phong", "Hòa Vang", "Diễn Châu", "Nghĩa Hưng", "Thống Nhất"]
VI_PROVINCES = ["Bắc Ninh", "Nghệ An", "Đồng Nai", "Nam Định", "Thanh Hóa", "Quảng Nam", "Long An", "Thái Bình"]
VI_CITIES = ["TP. Hồ Chí Minh", "TP.HCM", "Hà Nội", "Đà Nẵng", "Cần Thơ", "TP. Hà Nội", "thành phố Hồ Chí Minh"]
VI_TITLES = ["anh", "chị", "ông", "bà", "cô", "chú", "em", "bác sĩ", "bệnh nhân", "khách hàng", "điều dưỡng", "cháu"]


def _vi_name(rng: random.Random) -> str:
    given = rng.choice(VI_GIVEN) if rng.random() < 0.7 else f"{rng.choice(VI_MIDDLE)} {rng.choice(VI_GIVEN)}"
    return (
        f"{rng.choice(VI_SURNAMES)} {rng.choice(VI_MIDDLE)} {given}"
        if rng.random() < 0.85
        else f"{rng.choice(VI_SURNAMES)} {rng.choice(VI_GIVEN)}"
    )


def _vi_address(rng: random.Random) -> str:
    n = rng.randint(1, 350)
    street, ward, district = rng.choice(VI_STREETS), rng.choice(VI_WARDS), rng.choice(VI_DISTRICTS)
    city = rng.choice(VI_CITIES)
    form = rng.randrange(7)
    if form == 0:
        return f"số {n} đường {street}, phường {ward}, quận {district}, {city}"
    if form == 1:
        return f"{n}/{rng.randint(1, 40)} {street}, phường {ward}, quận {district}, {city}"
    if form == 2:
        return f"ngõ {rng.randint(2, 200)} phố {street}, quận {district}, Hà Nội"
    if form == 3:
        kind, name = rng.choice(VI_RURAL)
        return f"{kind} {name}, xã {rng.choice(VI_COMMUNES)}, huyện {rng.choice(VI_RURAL_DISTRICTS)}, tỉnh {rng.choice(VI_PROVINCES)}"
    if form == 4:
        return f"{n} {street}, P. {ward}, Q. {district}"
    if form == 5:
        return f"hẻm {rng.randint(2, 150)} {street}, phường {ward}, quận {district}"
    return f"{n}A đường {street}, phường {ward}, quận {district}"


def _vi_date(rng: random.Random) -> str:
    d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2019, 2025)
    return rng.choice([f"{d} tháng {m} năm {y}", f"{d}/{m}/{y}", f"{d:02d}/{m:02d}/{y}", f"{d}/{m}", f"{d} tháng {m}"])


def _vi_phone(rng: random.Random) -> str:
    head = rng.choice(["09", "03", "07", "08", "05"]) + str(rng.randint(0, 9))
    rest = f"{rng.randint(0, 9999999):07d}"
    return rng.choice(
        [
            f"{head}{rest}",
            f"{head} {rest[:3]} {rest[3:]}",
            f"{head}.{rest[:3]}.{rest[3:]}",
            f"+84 {head[1:]} {rest[:3]} {rest[3:]}",
        ]
    )


def _vi_email(rng: random.Random) -> str:
    return f"{rng.choice(['nguyen', 'tran', 'le', 'pham', 'hoang'])}{rng.choice(['van', 'thi', 'minh'])}{rng.randint(1, 99)}@{rng.choice(['gmail.com', 'yahoo.com.vn', 'fpt.vn'])}"


VI_TEMPLATES = {
    "news": [
        "Bệnh nhân {NAME} ({AGE} tuổi, trú tại {ADDR}) được xác định dương tính với SARS-CoV-2 ngày {DATE}.",
        "Theo bác sĩ {NAME}, Trưởng khoa Hồi sức tích cực, bệnh nhân đã tự thở được và có thể xuất viện.",
        "PGS.TS {NAME}, Giám đốc Bệnh viện Bạch Mai, cho biết bệnh viện đã tiếp nhận thêm 12 ca bệnh.",
        "Ngày {DATE}, Sở Y tế Hà Nội thông báo ca bệnh mới là {TGIVEN}, nhân viên một công ty ở {ADDR}.",
        "Ông {NAME} cùng vợ là bà {NAME} đã được cách ly tập trung từ ngày {DATE}.",
        "Bộ Y tế cho biết bệnh nhân N.V.A. (45 tuổi) đã âm tính lần thứ ba và được chuyển về địa phương.",
        "Bác sĩ {NAME} cho biết sức khỏe của bệnh nhân 91 đang tiến triển tốt sau 60 ngày điều trị.",
        "Chị {GIVEN_ONLY}, một nữ điều dưỡng ở Bệnh viện Chợ Rẫy, kể lại những ngày chống dịch ở TP.HCM.",
        "{NAME} là sinh viên năm ba, về quê ở {ADDR} từ ngày {DATE} và có tiếp xúc với ca bệnh.",
        "Theo lời kể của {NAME}, gia đình đã khai báo y tế đầy đủ khi trở về từ Đà Nẵng.",
        "Trần nhà của khu cách ly được gia cố lại; Thượng tá {NAME} chỉ đạo lực lượng quân y hỗ trợ.",
        "Ca bệnh thứ 1.560 là {TGIVEN}, trú tại {ADDR}, có kết quả xét nghiệm dương tính hôm {DATE}.",
    ],
    "clinical": [
        "BN {NAME}, nam, {AGE} tuổi. Địa chỉ: {ADDR}. Vào viện ngày {DATE} vì đau ngực trái.",
        "Họ tên: {UNAME}. Ngày sinh: {DATE}. CCCD: {CCCD}. Chẩn đoán: tăng huyết áp độ 2.",
        "Bệnh nhân {NAME} được chỉ định chụp CT ngực, huyết áp 130/80 mmHg, mạch 88 lần/phút.",
        "Người nhà bệnh nhân: {NAME}, số điện thoại {PHONE}, quan hệ: con trai.",
        "Bác sĩ điều trị: {NAME}. Hẹn tái khám ngày {DATE} tại phòng khám số 3.",
        "Sản phụ {NAME}, {AGE} tuổi, nhập viện lúc 8 giờ 30 ngày {DATE} với chẩn đoán chuyển dạ.",
        "Điều dưỡng {GIVEN_ONLY} ghi nhận bệnh nhân tỉnh, tiếp xúc tốt, SpO2 97%, nhiệt độ 37,2 độ C.",
        "Ghi chú: bệnh nhân có tiền sử đái tháo đường type 2, dùng Metformin 500 mg ngày 2 lần.",
        "Họ và tên bệnh nhân: {NAME}. Nơi ở hiện tại: {ADDR}. Số CMND: {CMND}.",
        "Chuyển viện lên Bệnh viện Việt Đức ngày {DATE}; người liên hệ: {NAME}, điện thoại {PHONE}.",
    ],
    "service": [
        "Khách hàng {NAME}, số điện thoại {PHONE}, số CCCD {CCCD}, địa chỉ {ADDR}, yêu cầu đổi gói cước.",
        "KH {NAME} phản ánh đơn hàng giao đến {ADDR} bị chậm 3 ngày, đề nghị hoàn tiền.",
        "Anh {GIVEN_ONLY} gọi lại lúc 14h ngày {DATE}, xin đổi lịch hẹn lắp đặt internet.",
        "Email khách hàng: {EMAIL}. Người đại diện: {NAME}. Hợp đồng số HĐ-2024-118.",
        "Chị {NAME} (SĐT {PHONE}) cần xuất hóa đơn cho Công ty TNHH Minh Phát, giao tại {ADDR}.",
        "Ghi nhận cuộc gọi: khách hàng không cung cấp tên, chỉ để lại số {PHONE} và hẹn gọi lại sau.",
        "Yêu cầu của ông {NAME} đã được chuyển cho bộ phận kỹ thuật khu vực Cần Thơ xử lý trước ngày {DATE}.",
        "Khách hàng {NAME} đăng ký nhận hàng tại {ADDR}, thanh toán khi nhận hàng.",
        "Tổng đài viên {GIVEN_ONLY} đã xác minh CMND số {CMND} của khách hàng trước khi cấp lại SIM.",
    ],
    "chat": [
        "chào {TGIVEN} ơi, mai em qua {ADDR} lấy hàng nhé",
        "Mình tên là {GIVEN_ONLY}, sđt {PHONE}, ship giúp mình đến {ADDR} nha",
        "{GIVEN_ONLY} ơi, tối nay 7h đi ăn lẩu ở Hà Nội không?",
        "dạ em gửi chị số tài khoản, chủ tài khoản {UNAME}, ngân hàng Vietcombank ạ",
        "hôm {DATE} anh {GIVEN_ONLY} có ghé nhà mình ở {ADDR} đó",
        "cho em hỏi bác sĩ {NAME} còn khám ở phòng 205 không ạ?",
        "{GIVEN_BARE} nói là thứ bảy này bận rồi, để tuần sau nhé",
        "ok chị, em note lại email {EMAIL} rồi nha",
        "nhà bác {GIVEN_ONLY} ở {ADDR}, cạnh trường tiểu học ấy",
    ],
}


def _vi_fill(rng: random.Random, slot: str) -> tuple[str, str | None] | tuple[str, str | None, int, int]:
    if slot == "NAME":
        return _vi_name(rng), "name"
    if slot == "UNAME":
        return _vi_name(rng).upper(), "name"
    if slot == "TGIVEN":  # a title and a given name: only the name is personal data
        title, given = rng.choice(VI_TITLES), rng.choice(VI_GIVEN)
        return f"{title} {given}", "name", len(title) + 1, len(title) + 1 + len(given)
    if slot in ("GIVEN_ONLY", "GIVEN_BARE"):
        return rng.choice(VI_GIVEN), "name"
    if slot == "ADDR":
        return _vi_address(rng), "address"
    if slot == "DATE":
        return _vi_date(rng), "date"
    if slot == "PHONE":
        return _vi_phone(rng), "phone"
    if slot == "CCCD":
        return f"0{rng.randint(10, 96)}{rng.randint(0, 999999999):09d}", "id"
    if slot == "CMND":
        return f"{rng.randint(100000000, 399999999)}", "id"
    if slot == "EMAIL":
        return _vi_email(rng), "email"
    if slot == "AGE":
        return str(rng.randint(18, 85)), None
    raise KeyError(slot)


def _build(template: str, fill, rng: random.Random) -> tuple[str, list[tuple[int, int, str]]]:
    out, spans, pos = [], [], 0
    for m in SLOT.finditer(template):
        out.append(template[pos : m.start()])
        at = sum(map(len, out))
        got = fill(rng, m.group(1))
        value, kind = got[0], got[1]
        if kind:
            a, b = (got[2], got[3]) if len(got) == 4 else (0, len(value))
            spans.append((at + a, at + b, kind))
        out.append(value)
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), spans


def _generate(templates: dict[str, list[str]], fill, n: int, seed: int, lang: str) -> list[dict]:
    rng = random.Random(seed)
    records, styles = [], list(templates)
    for i in range(n):
        style = styles[i % len(styles)]
        template = templates[style][(i // len(styles)) % len(templates[style])]
        text, spans = _build(template, fill, rng)
        records.append({"text": text, "lang": lang, "style": style, "spans": spans})
    return records


def vietnamese(n: int = 360, seed: int = 18) -> list[dict]:
    return _generate(VI_TEMPLATES, _vi_fill, n, seed, "vi")


# --- English clinical (HIPAA Safe Harbor) ----------------------------------------------------------
EN_FIRST = [
    "John",
    "Maria",
    "David",
    "Linda",
    "James",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Elizabeth",
    "William",
    "Susan",
    "Thomas",
    "Karen",
    "Daniel",
    "Nancy",
    "Anthony",
    "Margaret",
    "Kevin",
    "Dorothy",
    "Jose",
    "Aisha",
    "Wei",
    "Priya",
    "Tyrone",
    "Siobhan",
    "Mateo",
    "Olga",
    "Hiroshi",
    "Fatima",
]
EN_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Okafor",
    "Kowalski",
    "Nguyen",
    "Patel",
    "O'Brien",
    "Schneider",
    "Haddad",
    "Yamamoto",
]
EN_STREETS = [
    "Main",
    "Oak",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Pine",
    "Sunset",
    "Franklin",
    "Highland",
    "Jefferson",
    "Cherry",
    "Willow Creek",
]
EN_TYPES = ["St", "Street", "Ave", "Avenue", "Rd", "Road", "Blvd", "Lane", "Dr", "Drive", "Ct", "Way", "Pl", "Terrace"]
EN_CITIES = [
    ("Springfield", "IL", "627"),
    ("Worcester", "MA", "016"),
    ("Dayton", "OH", "454"),
    ("Fresno", "CA", "937"),
    ("Tulsa", "OK", "741"),
    ("Albany", "NY", "122"),
    ("Boise", "ID", "837"),
    ("Tacoma", "WA", "984"),
    ("Savannah", "GA", "314"),
    ("Lubbock", "TX", "794"),
    ("Rochester", "MN", "559"),
    ("Lebanon", "NH", "037"),
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

EN_TEMPLATES = {
    "clinical": [
        "Patient {NAME}, DOB {DATE}, MRN {MRN}, presented on {DATE} with chest pain. BP 142/88, HR 96, troponin negative.",
        "{AGE90}-year-old female admitted {DATE} for hip fracture. Lives alone at {ADDR}. Daughter {NAME} can be reached at {PHONE}.",
        "Discharge summary for {NAME} (MRN: {MRN}). Admitted {DATE}, discharged {DATE}. Follow up with Dr. {LAST} in 2 weeks.",
        "Pt is a {AGE90} yo male with CHF, EF 30%. Pacemaker serial {DEVICE}. Metformin 500 mg BID, lisinopril 10 mg daily.",
        "Emergency contact: {NAME}, {PHONE}. Patient resides at {ADDR} and was seen at the clinic on {DATE}.",
        "Referred by Dr. {NAME} on {DATE}. Insulin pump device ID {DEVICE}. A1c 8.1%, ICD-10 E11.9.",
        "Patient {NAME}, aged {AGE90}, lives in {CITY}. Hospice referral placed {DATE}; SSN on file {SSN}.",
        "Spouse {NAME} reports the patient fell at home ({ADDR}) on {DATE}. CT head negative, CPT 70450.",
        "Pathology accession {UNIQUE}, specimen collected {DATE} from patient {NAME}, MRN {MRN}.",
        "Veteran {NAME}, mailing address {MILADDR}, discharged {DATE}. Contact by email {EMAIL}.",
    ],
    "billing": [
        "Claim {ACCOUNT} for {NAME}, member ID {PLAN}, date of service {DATE}. Billed CPT 99214, amount $180.00.",
        "Statement mailed to {NAME}, {ADDR}. Account number {ACCOUNT}, balance due $412.50 by {DATE}.",
        "Subscriber {NAME}, policy number {PLAN}, group number {PLAN}. Fax the EOB to {FAX}.",
        "Patient {NAME}, SSN {SSN}, Medicaid ID {PLAN}. Remit to PO Box {POBOX}, {CITY}, {STATE} {ZIP}.",
        "Refund issued on {DATE} to account {ACCOUNT} for {NAME}; questions to billing at {PHONE} or {EMAIL}.",
        "Provider license number {LICENSE}, NPI on file. Invoice {ACCOUNT} dated {DATE} for patient {NAME}.",
        "Guardian {NAME} updated the billing address to {ADDR} on {DATE}. ZIP code {ZIP5}.",
        "Portal login from IP {IP} by {NAME} on {DATE}; account {ACCOUNT} locked after 3 attempts.",
    ],
    "ticket": [
        "Ticket #{UNIQUE}: caller {NAME} says the home oxygen unit (serial {DEVICE}) alarms at night. Call back at {PHONE}.",
        "Case number {UNIQUE}. Customer {NAME} ({EMAIL}) cannot open {URL} from the clinic network (IP {IP}).",
        "Transport request: patient {NAME} will arrive in a vehicle with license plate {PLATE}, VIN {VIN}, on {DATE}.",
        "Home health visit scheduled {DATE} at {ADDR}. Nurse {NAME}, nursing license {LICENSE}.",
        "Client {NAME} asked to move records from {MILADDR} to {ADDR}. Reference number {UNIQUE}.",
        "Member {NAME}, age {AGE90}, requests a wheelchair delivery to {ADDR} before {DATE}.",
        "Reported by {NAME} on {DATE}: the patient portal at {URL} shows another patient's lab results.",
        "Parking permit for {NAME}: plate number {PLATE}, vehicle VIN {VIN}. Valid until {DATE}.",
    ],
}


def _en_date(rng: random.Random) -> str:
    d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1931, 2026)
    return rng.choice(
        [
            f"{MONTHS[m - 1]} {d}, {y}",
            f"{m}/{d}/{y}",
            f"{m:02d}/{d:02d}/{y}",
            f"{y}-{m:02d}-{d:02d}",
            f"{MONTHS[m - 1][:3]} {d}, {y}",
            f"{d} {MONTHS[m - 1]} {y}",
            f"{MONTHS[m - 1]} {d}",
        ]
    )


def _en_address(rng: random.Random) -> str:
    street = f"{rng.randint(2, 9899)} {rng.choice(EN_STREETS)} {rng.choice(EN_TYPES)}"
    unit = rng.choice(
        [
            "",
            "",
            f", Apt {rng.randint(1, 40)}{rng.choice('ABC')}",
            f" Suite {rng.randint(100, 900)}",
            f", Unit {rng.randint(1, 30)}",
        ]
    )
    city, state, z3 = rng.choice(EN_CITIES)
    tail = rng.choice(["", f", {city}, {state} {z3}{rng.randint(0, 99):02d}", f", {city}, {state}"])
    return street + unit + tail


def _en_military(rng: random.Random) -> str:
    return rng.choice(
        [
            f"PSC {rng.randint(1000, 9999)}, Box {rng.randint(100, 9999)}, APO AE {rng.randint(9000, 9899):05d}",
            f"Unit {rng.randint(2000, 9999)} Box {rng.randint(100, 9999)}, DPO AP {rng.randint(96200, 96699)}",
            f"USNS Comfort, FPO AA {rng.randint(34000, 34099)}",
            f"CMR {rng.randint(400, 499)}, Box {rng.randint(1000, 9999)}, APO AE {rng.randint(9000, 9899):05d}",
        ]
    )


def _vin(rng: random.Random) -> str:
    from curate.pii.validators import _VIN_VALUES, _VIN_WEIGHTS

    chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    while True:
        v = list("".join(rng.choice(chars) for _ in range(17)))
        v[8] = "0"
        total = sum(_VIN_VALUES[c] * w for c, w in zip(v, _VIN_WEIGHTS)) % 11
        v[8] = "X" if total == 10 else str(total)
        vin = "".join(v)
        if not vin.isdigit() and not vin.isalpha():
            return vin


def _en_fill(rng: random.Random, slot: str):
    if slot == "NAME":
        middle = f" {rng.choice('ABCDEJKLMRT')}." if rng.random() < 0.2 else ""
        return f"{rng.choice(EN_FIRST)}{middle} {rng.choice(EN_LAST)}", "name"
    if slot == "LAST":
        return rng.choice(EN_LAST), "name"
    if slot == "DATE":
        return _en_date(rng), "date"
    if slot == "MRN":
        return rng.choice([f"{rng.randint(100000, 99999999)}", f"MR{rng.randint(10000, 999999)}"]), "mrn"
    if slot == "AGE90":
        return str(rng.randint(90, 104)), "age_over_89"
    if slot == "ADDR":
        return _en_address(rng), "address"
    if slot == "MILADDR":
        return _en_military(rng), "address"
    if slot == "POBOX":
        return str(rng.randint(100, 99999)), "address"
    if slot == "CITY":
        return rng.choice(EN_CITIES)[0], "city"
    if slot == "STATE":
        return rng.choice(EN_CITIES)[1], None
    if slot in ("ZIP", "ZIP5"):
        return f"{rng.choice(EN_CITIES)[2]}{rng.randint(0, 99):02d}", "zip"
    if slot in ("PHONE", "FAX"):
        n = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        return rng.choice(
            [
                f"({n[:3]}) {n[3:6]}-{n[6:]}",
                f"{n[:3]}-{n[3:6]}-{n[6:]}",
                f"{n[:3]}.{n[3:6]}.{n[6:]}",
                f"+1 {n[:3]} {n[3:6]} {n[6:]}",
            ]
        ), "fax" if slot == "FAX" else "phone"
    if slot == "EMAIL":
        return (
            f"{rng.choice(EN_FIRST).lower()}.{rng.choice(EN_LAST).lower().replace(chr(39), '')}{rng.randint(1, 99)}@{rng.choice(['gmail.com', 'outlook.com', 'yahoo.com', 'mychart.org'])}",
            "email",
        )
    if slot == "SSN":
        return f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}", "ssn"
    if slot == "PLAN":
        return rng.choice(
            [
                f"{rng.choice('XYZWQ')}{rng.choice('ABCHJK')}{rng.choice('HKMN')}{rng.randint(100000000, 999999999)}",
                f"{rng.randint(10000, 99999)}-{rng.randint(100, 999)}",
                f"1EG4-TE5-MK{rng.randint(10, 99)}",
            ]
        ), "health_plan"
    if slot == "ACCOUNT":
        return rng.choice(
            [
                f"{rng.randint(1000000, 99999999)}",
                f"AC-{rng.randint(100000, 999999)}",
                f"{rng.randint(10000, 99999)}-{rng.randint(1, 9)}",
            ]
        ), "account"
    if slot == "LICENSE":
        return rng.choice(
            [
                f"RN{rng.randint(100000, 999999)}",
                f"{rng.choice('ABCDG')}{rng.randint(10000, 99999)}",
                f"MD-{rng.randint(10000, 99999)}",
            ]
        ), "license"
    if slot == "PLATE":
        return rng.choice(
            [
                f"{rng.randint(1, 9)}{''.join(rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ') for _ in range(3))}{rng.randint(100, 999)}",
                f"{''.join(rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ') for _ in range(3))}-{rng.randint(1000, 9999)}",
            ]
        ), "vehicle"
    if slot == "VIN":
        return _vin(rng), "vehicle"
    if slot == "DEVICE":
        return rng.choice(
            [
                f"SN{rng.randint(1000000, 9999999)}",
                f"PJN{rng.randint(100000, 999999)}H",
                f"{rng.randint(10, 99)}-{rng.randint(1000, 9999)}-{rng.choice('ABCX')}",
            ]
        ), "device"
    if slot == "URL":
        return rng.choice(
            [
                f"https://portal.{rng.choice(['stmarys', 'valleyhealth', 'northclinic'])}.org/patient/{rng.randint(1000, 99999)}",
                f"www.{rng.choice(EN_LAST).lower().replace(chr(39), '')}family.net",
            ]
        ), "url"
    if slot == "IP":
        return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "ip"
    if slot == "UNIQUE":
        return rng.choice(
            [
                f"{rng.randint(10000, 999999)}",
                f"CS-{rng.randint(10000, 99999)}",
                f"S{rng.randint(10, 26)}-{rng.randint(1000, 9999)}",
            ]
        ), "unique_id"
    raise KeyError(slot)


def clinical(n: int = 320, seed: int = 18) -> list[dict]:
    return _generate(EN_TEMPLATES, _en_fill, n, seed, "en")
