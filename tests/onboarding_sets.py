"""Small labeled data sets in the layouts users bring, written for the `curate init` tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = [
    "Lan",
    "Minh",
    "Sofia",
    "Omar",
    "Priya",
    "Jonas",
    "Aiko",
    "Mateo",
    "Grace",
    "Tuan",
    "Elena",
    "Kwame",
    "Hana",
    "Diego",
    "Ingrid",
    "Ravi",
    "Chloe",
    "Bao",
    "Nadia",
    "Felix",
    "Amara",
    "Lukas",
    "Mei",
    "Tomas",
    "Zara",
    "Hugo",
    "Leila",
    "Arjun",
    "Noor",
    "Pablo",
    "Yuki",
    "Sven",
    "Ines",
    "Kofi",
    "Maya",
    "Oskar",
    "Rosa",
    "Dev",
]
ITEMS = [
    ("apples", "basket"),
    ("pencils", "box"),
    ("stickers", "album"),
    ("marbles", "jar"),
    ("cookies", "tray"),
    ("books", "shelf"),
    ("stamps", "folder"),
    ("seeds", "packet"),
    ("beads", "bag"),
    ("cards", "deck"),
    ("oranges", "crate"),
    ("crayons", "tin"),
    ("shells", "bucket"),
    ("muffins", "carton"),
    ("buttons", "pouch"),
    ("candles", "case"),
    ("plums", "bowl"),
    ("ribbons", "roll"),
]
PLACES = ["market", "school fair", "bakery", "library sale", "garden shop", "bookstore", "craft club", "farm stand"]


OPENERS = [
    "",
    "On Saturday, ",
    "During the holidays, ",
    "Before lunch, ",
    "For a class project, ",
    "Last spring, ",
    "At the end of the week, ",
    "To prepare for a party, ",
]
ASKS = [
    "How many {item} does {name} have now?",
    "What is the number of {item} {name} ends up with?",
    "How many {item} are left with {name}?",
    "Find how many {item} {name} keeps.",
]
SAYS = ["so", "which gives", "that makes", "in total"]


def _problem(rng: random.Random, i: int) -> dict:
    """One word problem: the kind of task, the people, things, places, numbers and the phrasing all vary, so two
    problems share few 13-word runs (as in GSM8K) and neither dedup nor decontamination sees them as one."""
    name, other = rng.sample(NAMES, 2)
    item, holder = rng.choice(ITEMS)
    place = rng.choice(PLACES)
    opener, say = rng.choice(OPENERS), rng.choice(SAYS)
    a, b, c = rng.randint(3, 60), rng.randint(2, 25), rng.randint(2, 9)
    kind = rng.randrange(5)
    if kind == 0:
        ask = rng.choice(ASKS).format(item=item, name=name)
        q = f"{opener}{name} has {a} {item}. At the {place}, {name} buys {b} more and then gives {c} to {other}. {ask}"
        steps, ans = (
            (
                f"After buying, {name} holds {a} + {b} = {a + b} {item}. Giving {c} to {other} leaves "
                f"{a + b} - {c} = {a + b - c}, {say} {a + b - c}."
            ),
            a + b - c,
        )
    elif kind == 1:
        q = f"{opener}{name} fills {b} {holder}s for the {place}, putting {c} {item} in each. How many {item} is that altogether?"
        steps, ans = f"{b} {holder}s times {c} {item} per {holder} is {b} * {c} = {b * c}; {say} {b * c} {item}.", b * c
    elif kind == 2:
        price = rng.randint(2, 12)
        q = (
            f"{opener}a {holder} of {item} costs ${price} at the {place}. {name} buys {c} of them and hands over "
            f"${price * c + b}. What change should {name} receive?"
        )
        steps, ans = (
            (
                f"{c} {holder}s at ${price} cost {c} * {price} = {price * c} dollars. "
                f"{name} paid {price * c + b}, {say} {price * c + b} - {price * c} = {b} dollars back."
            ),
            b,
        )
    elif kind == 3:
        total = c * b
        q = f"{opener}{name} and {other} bring {total} {item} from the {place} and split them evenly between {c} friends. What does each friend get?"
        steps, ans = f"Sharing {total} {item} among {c} friends gives {total} / {c} = {b}, {say} {b} {item} each.", b
    else:
        q = (
            f"{opener}{other} gathered {a} {item} on Monday and twice that number on Tuesday for the {place}. "
            f"{name} gathered {b} fewer than {other} did over both days. How many did {name} gather?"
        )
        steps, ans = (
            (
                f"Tuesday adds 2 * {a} = {2 * a}, so {other} has {a} + {2 * a} = {3 * a} {item}. "
                f"{name} has {b} fewer: {3 * a} - {b} = {3 * a - b}."
            ),
            3 * a - b,
        )
    return {"question": q, "answer": f"{steps}\n#### {ans}"}


def gsm8k_style(path: Path, n: int = 240, seed: int = 7) -> Path:
    """GSM8K-style `question`/`answer` lines: grade-school word problems, the reasoning, then `#### N`."""
    rng = random.Random(seed)
    path.write_text("".join(json.dumps(_problem(rng, i)) + "\n" for i in range(n)), encoding="utf-8")
    return path


REVIEW_OPENERS = [
    "I ordered",
    "We bought",
    "My sister gave me",
    "Last week I tried",
    "Our team tested",
    "I returned",
    "After a month with",
    "I finally replaced my old kettle with",
]
PRODUCTS = [
    "the blue travel mug",
    "a cordless drill",
    "the reading lamp",
    "this rice cooker",
    "the walking shoes",
    "a budget phone case",
    "the garden hose",
    "this desk chair",
    "the wool blanket",
    "a pair of headphones",
]
GOOD = [
    "it works exactly as described and the battery lasts for days",
    "the build quality is excellent and it arrived early",
    "it is comfortable, quiet and easy to clean",
    "support answered within an hour and solved the problem",
]
BAD = [
    "it broke after two uses and the seller never replied",
    "the colour is wrong and the stitching came apart",
    "it is loud, heavy and the handle gets hot",
    "the instructions are missing and the parts do not fit",
]
MIXED = [
    "it does the job but the lid is hard to open",
    "the price is fair although delivery took three weeks",
    "it looks nice, yet the cable is far too short",
    "good for the price, but the finish scratches easily",
]


def reviews(path: Path, n: int = 300, seed: int = 11) -> Path:
    """Short product reviews with a `sentiment` label (positive / negative / mixed): a classification set."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label, pool = rng.choice([("positive", GOOD), ("negative", BAD), ("mixed", MIXED)])
        text = (
            f"{rng.choice(REVIEW_OPENERS)} {rng.choice(PRODUCTS)} from the {rng.choice(PLACES)}, and {rng.choice(pool)}. "
            f"{rng.choice(NAMES)} in our house says {rng.choice(pool)}. Order number {1000 + i} came in {rng.randint(2, 9)} days."
        )
        rows.append({"review_id": f"r{i}", "text": text, "sentiment": label})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pydoc_documents(path: Path, shortest: int | None = None) -> Path:
    """Real documents nobody here wrote: the topics of Python's own help (pydoc_data), one per record
    (only the `shortest` ones if given)."""
    from pydoc_data.topics import topics

    chosen = sorted(topics.items(), key=lambda kv: len(kv[1]))[:shortest] if shortest else topics.items()
    path.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in sorted(chosen)), encoding="utf-8")
    return path


# Hand-written GSM8K-style problems, each its own story (the generator above repeats five stories, which
# decontamination rightly sees as one task in train and test): (question, reasoning, answer).
WORD_PROBLEMS = [
    (
        "A baker makes 14 loaves each morning and sells all but 3. How many loaves does she sell in a 5-day week?",
        "She sells 14 - 3 = 11 loaves a day. Over 5 days that is 11 * 5 = 55.",
        55,
    ),
    (
        "Tom reads 12 pages of his novel on weekdays and 30 pages on each weekend day. How many pages does he read in one week?",
        "Weekdays give 5 * 12 = 60 pages and the weekend 2 * 30 = 60 pages, so 60 + 60 = 120.",
        120,
    ),
    (
        "A parking garage has 6 floors with 45 spaces on each. If 198 cars are parked, how many spaces are free?",
        "There are 6 * 45 = 270 spaces. 270 - 198 = 72 are free.",
        72,
    ),
    (
        "Mai saves $8 every week. She wants headphones that cost $100 and already has $28. How many weeks must she save?",
        "She still needs 100 - 28 = 72 dollars. At 8 dollars a week that takes 72 / 8 = 9 weeks.",
        9,
    ),
    (
        "A train leaves at 9:15 and the trip takes 2 hours and 50 minutes. At what minute past 12 does it arrive?",
        "9:15 plus 2 hours is 11:15, plus 50 minutes is 12:05. It arrives 5 minutes past 12.",
        5,
    ),
    (
        "A garden bed is 9 feet long and 4 feet wide. Each square foot needs 3 seedlings. How many seedlings are needed?",
        "The area is 9 * 4 = 36 square feet, so 36 * 3 = 108 seedlings.",
        108,
    ),
    (
        "Carlos bought 3 shirts at $15 each and a belt for $12. He paid with a $100 bill. What was his change?",
        "The shirts cost 3 * 15 = 45 dollars, plus 12 is 57. His change is 100 - 57 = 43.",
        43,
    ),
    (
        "A school orders 24 boxes of markers with 8 markers per box, then gives 15 markers to each of 11 classrooms. How many markers remain?",
        "They have 24 * 8 = 192 markers and give away 15 * 11 = 165, leaving 192 - 165 = 27.",
        27,
    ),
    (
        "A cyclist rides at 18 kilometres per hour for 2.5 hours. How far does she travel?",
        "Distance is speed times time: 18 * 2.5 = 45 kilometres.",
        45,
    ),
    (
        "There are 40 students in a club. Three eighths of them play chess and the rest play go. How many play go?",
        "Chess players are 40 * 3 / 8 = 15, so 40 - 15 = 25 play go.",
        25,
    ),
    (
        "A water tank holds 500 litres and leaks 12 litres per hour. How many litres are left after 15 hours?",
        "It loses 12 * 15 = 180 litres, so 500 - 180 = 320 remain.",
        320,
    ),
    (
        "Nadia is 4 years older than her brother. In 6 years their ages will add up to 38. How old is her brother now?",
        "In 6 years the sum grows by 12, so now it is 38 - 12 = 26. Brother plus brother plus 4 is 26, so the brother is 11.",
        11,
    ),
    (
        "A recipe needs 250 grams of flour for 10 pancakes. How much flour is needed for 36 pancakes?",
        "Each pancake needs 250 / 10 = 25 grams, so 36 * 25 = 900 grams.",
        900,
    ),
    (
        "A phone plan costs $20 a month plus $0.10 per text. Lena sent 340 texts in March. What was her bill?",
        "The texts cost 340 * 0.10 = 34 dollars, so the bill is 20 + 34 = 54.",
        54,
    ),
    (
        "A farmer has chickens and cows, 30 animals with 74 legs in all. How many cows does he have?",
        "If all 30 were chickens there would be 60 legs. The extra 74 - 60 = 14 legs come 2 per cow, so 7 cows.",
        7,
    ),
    (
        "A movie theatre sells 120 tickets at $9 and 80 at the $6 matinee price. What is the total revenue?",
        "Evening tickets bring 120 * 9 = 1080 and matinees 80 * 6 = 480, for 1080 + 480 = 1560 dollars.",
        1560,
    ),
    (
        "Jin walks 1.2 kilometres to school and back every weekday. How many kilometres does he walk in 4 weeks?",
        "Each day is 2 * 1.2 = 2.4 km. Four weeks have 20 school days, so 2.4 * 20 = 48 km.",
        48,
    ),
    (
        "A shop discounts a $80 jacket by 25 percent, then adds 10 percent tax on the sale price. What does the jacket cost?",
        "The discount is 20 dollars, so the sale price is 60. Tax adds 6, giving 66.",
        66,
    ),
    (
        "An aquarium has 5 tanks. Each tank holds 3 more fish than the one before, and the first holds 8. How many fish are there?",
        "The tanks hold 8, 11, 14, 17 and 20 fish, which add up to 70.",
        70,
    ),
    (
        "A printer prints 25 pages per minute. How many minutes does it need for 14 reports of 75 pages each?",
        "The reports have 14 * 75 = 1050 pages, which take 1050 / 25 = 42 minutes.",
        42,
    ),
    (
        "Ella had 3 dozen eggs. She used 7 for a cake and 2 each morning for 5 days. How many eggs are left?",
        "She had 36 eggs, used 7 plus 2 * 5 = 10, so 36 - 17 = 19 are left.",
        19,
    ),
    (
        "A rectangle has a perimeter of 50 centimetres and a length of 15 centimetres. What is its area?",
        "Twice the width is 50 - 30 = 20, so the width is 10 and the area is 15 * 10 = 150.",
        150,
    ),
    (
        "A library fines 25 cents per day for a late book. Omar returned two books 6 and 9 days late. What is his fine in cents?",
        "The books are late 6 + 9 = 15 days in total, so the fine is 15 * 25 = 375 cents.",
        375,
    ),
    (
        "A bus carries 52 passengers. At the first stop 17 get off and 9 get on; at the second 23 get off. How many remain?",
        "After the first stop there are 52 - 17 + 9 = 44, and after the second 44 - 23 = 21.",
        21,
    ),
    (
        "Sara runs 5 laps of a 400 metre track every day for a fortnight. How many kilometres does she run?",
        "Each day is 5 * 400 = 2000 metres, or 2 km. A fortnight is 14 days, so 28 km.",
        28,
    ),
    (
        "A class of 28 shares 7 pizzas cut into 8 slices each. How many slices does each student get?",
        "There are 7 * 8 = 56 slices for 28 students, so 56 / 28 = 2 each.",
        2,
    ),
    (
        "Priya earns $14 an hour and $21 an hour for overtime. Last week she worked 40 regular hours and 6 overtime hours. What did she earn?",
        "Regular pay is 40 * 14 = 560 and overtime 6 * 21 = 126, so 560 + 126 = 686 dollars.",
        686,
    ),
    (
        "A pond has 96 lily pads and the number doubles every week. After how many weeks will it have 1536?",
        "96 doubles to 192, 384, 768 and 1536, which takes 4 weeks.",
        4,
    ),
    (
        "Three friends split a restaurant bill of $84 and a 15 percent tip equally. How much does each pay?",
        "The tip is 84 * 0.15 = 12.60, so the total is 96.60 and each pays 96.60 / 3 = 32.20 dollars.",
        32.2,
    ),
    (
        "A factory packs 360 bolts into bags of 24. How many full bags are there and how many bolts are left over?",
        "360 / 24 = 15 exactly, so there are 15 full bags and no bolts left over.",
        15,
    ),
    (
        "Leo's car uses 6 litres of fuel per 100 kilometres. How much fuel does a 450 kilometre trip need?",
        "The trip is 4.5 hundreds of kilometres, so 4.5 * 6 = 27 litres.",
        27,
    ),
    (
        "A zoo sells adult tickets for $18 and child tickets for $11. A family of 2 adults and 3 children visits. What do they pay?",
        "Adults cost 2 * 18 = 36 and children 3 * 11 = 33, so 36 + 33 = 69 dollars.",
        69,
    ),
    (
        "The temperature was -4 degrees at dawn and rose 3 degrees every hour for 5 hours. What was it then?",
        "It rose 3 * 5 = 15 degrees, so -4 + 15 = 11 degrees.",
        11,
    ),
    (
        "A box of 48 chocolates is shared so that Anna gets twice as many as Ben, and Cal gets as many as Ben. How many does Anna get?",
        "Ben and Cal get one part each and Anna two, which is 4 parts of 48 / 4 = 12, so Anna gets 24.",
        24,
    ),
    (
        "A painter needs 1 litre of paint for 12 square metres. A room has four walls of 3 by 4 metres. How many litres are needed?",
        "The walls cover 4 * 3 * 4 = 48 square metres, so 48 / 12 = 4 litres.",
        4,
    ),
    (
        "Kofi planted 7 rows of 12 tomato plants. A storm destroyed one quarter of them. How many plants survived?",
        "He planted 7 * 12 = 84 plants; a quarter is 21, so 84 - 21 = 63 survived.",
        63,
    ),
    (
        "A video is 3 minutes 40 seconds long. How many seconds do 9 plays of it last?",
        "The video lasts 180 + 40 = 220 seconds, so 9 plays last 9 * 220 = 1980 seconds.",
        1980,
    ),
    (
        "A bookshelf has 5 shelves. The top holds 18 books and each lower shelf holds 4 more than the one above. How many books in all?",
        "The shelves hold 18, 22, 26, 30 and 34 books, for a total of 130.",
        130,
    ),
    (
        "Hana buys 2.5 kilograms of apples at $3.20 per kilogram and a melon for $4.50. What does she spend?",
        "The apples cost 2.5 * 3.20 = 8 dollars, plus 4.50 is 12.50.",
        12.5,
    ),
    (
        "A hotel has 12 floors with 18 rooms each. On Friday 85 percent of the rooms were booked. How many rooms were empty?",
        "There are 12 * 18 = 216 rooms and 15 percent of them, 32.4, round to 32 empty rooms.",
        32,
    ),
    (
        "Diego's monthly rent went from $950 to $1026. By what percent did it rise?",
        "The rise is 1026 - 950 = 76 dollars, and 76 / 950 = 0.08, which is 8 percent.",
        8,
    ),
    (
        "A relay team of 4 runs a 1600 metre race; the times are 58, 61, 57 and 64 seconds. What is the team's total time?",
        "Adding the legs: 58 + 61 + 57 + 64 = 240 seconds.",
        240,
    ),
    (
        "A candle burns 2 centimetres per hour and is 26 centimetres tall. How tall is it after burning from 6 pm to 1 am?",
        "From 6 pm to 1 am is 7 hours, so it burns 14 cm and is 26 - 14 = 12 cm tall.",
        12,
    ),
    (
        "Grace knits 3 scarves a week and sells each for $22. Yarn for one scarf costs $7. What is her profit after 6 weeks?",
        "She makes 18 scarves with a profit of 22 - 7 = 15 each, so 18 * 15 = 270 dollars.",
        270,
    ),
    (
        "A map uses 1 centimetre for 25 kilometres. Two towns are 7.4 centimetres apart on the map. How far apart are they?",
        "7.4 * 25 = 185 kilometres.",
        185,
    ),
    (
        "A tree was 1.8 metres tall when planted and grows 45 centimetres a year. How tall is it after 8 years in centimetres?",
        "It grows 8 * 45 = 360 cm on top of 180 cm, so 540 cm.",
        540,
    ),
    (
        "Lukas has 150 marbles. He gives 20 percent to his sister and then half of the rest to a friend. How many does he keep?",
        "He gives 30 to his sister, leaving 120, then 60 to a friend, keeping 60.",
        60,
    ),
    (
        "A concert hall has 24 rows of 35 seats. Tickets sold out except 2 full rows. How many tickets were sold?",
        "The hall has 24 * 35 = 840 seats and 2 * 35 = 70 are unsold, so 770 tickets were sold.",
        770,
    ),
]


def gsm8k_file(path: Path) -> Path:
    """The hand-written problems above as GSM8K-style `question`/`answer` lines."""
    rows = [{"question": q, "answer": f"{steps}\n#### {ans:g}"} for q, steps, ans in WORD_PROBLEMS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# Vietnamese patient questions as real sets have them: word-segmented (VnCoreNLP/pyvi underscores between
# a word's syllables) or not, punctuation spaced off, some with no question mark, some in capitals, a few
# typed without diacritics; each with an intent label under a name no list knows ("sent_label") and span
# labels beside it ("seq_label"), in one pretty-printed JSON array.
SYMPTOMS = [
    "đau_đầu",
    "chóng_mặt",
    "buồn_nôn",
    "tiểu đêm",
    "ho khan kéo_dài",
    "sốt cao về chiều",
    "đau bụng dưới",
    "mất ngủ",
    "tê tay chân",
    "đau lưng",
    "khó thở khi nằm",
    "đau ngực trái",
    "ợ chua",
    "nổi mẩn đỏ",
    "rụng tóc nhiều",
    "đau khớp gối",
    "tiêu_chảy",
    "táo_bón",
    "chảy máu cam",
    "ù tai",
    "mờ mắt",
    "đau họng",
    "sổ_mũi",
    "ra mồ_hôi trộm",
    "tim đập nhanh",
    "đau vai gáy",
    "phù chân",
    "ngứa da",
    "khô miệng",
    "sút cân",
]
INTENTS = {
    "cause": [
        "Vì_sao bị {s} ?",
        "Nguyên_nhân gây {s} là gì ?",
        "Tại_sao em hay bị {s}",
        "{s} là do đâu ạ ?",
        "Bị {s} thường xuyên là do bệnh gì ?",
        "Cho em hỏi {s} có phải do thiếu chất không ?",
    ],
    "treatment": [
        "Bị {s} thì nên uống thuốc gì ?",
        "Cách chữa {s} tại nhà",
        "{s} điều_trị như thế_nào ạ ?",
        "Làm_sao để hết {s} ?",
        "Bị {s} có nên đi khám chuyên_khoa không ?",
        "Mẹo giảm {s} nhanh",
    ],
    "severity": [
        "{s} có nguy_hiểm không ?",
        "Bị {s} lâu ngày có sao không bác_sĩ ?",
        "{s} kéo_dài 2 tuần có đáng lo không ?",
        "Con tôi 5 tuổi bị {s} có nghiêm_trọng không ?",
        "{s} ở người già có nguy_hiểm không ạ",
    ],
    "diagnosis": [
        "Bị {s} là bị bệnh gì ?",
        "{s} kèm mệt_mỏi là dấu_hiệu bệnh gì ?",
        "Em bị {s} và {t} là bị gì vậy ?",
        "Triệu_chứng {s} có phải bệnh tim không ?",
        "Cần làm xét_nghiệm gì khi bị {s} ?",
    ],
}
OPENERS_VI = ["", "", "", "Chào bác_sĩ , ", "Bác_sĩ cho em hỏi , ", "Dạ cho hỏi ", "Xin hỏi : "]
UNACCENTED = {"đ": "d", "Đ": "D"}


def _unaccent(text: str) -> str:
    import unicodedata

    text = "".join(UNACCENTED.get(c, c) for c in text)
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def patient_questions(path: Path, n: int = 600, seed: int = 17) -> Path:
    """Short Vietnamese patient questions with an intent in `sent_label`: a classification set."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = rng.choice(sorted(INTENTS))
        s, t = rng.sample(SYMPTOMS, 2)
        text = rng.choice(OPENERS_VI) + rng.choice(INTENTS[label]).format(s=s, t=t)
        text = text[0].upper() + text[1:]
        if rng.random() < 0.5:  # half the set is not word-segmented
            text = text.replace("_", " ")
        if rng.random() < 0.04:
            text = text.upper()
        elif rng.random() < 0.03:
            text = _unaccent(text)
        if text in seen:
            continue
        seen.add(text)
        start = text.lower().find(s.split()[0].replace("_", " ")) if "_" not in text else text.lower().find(s)
        rows.append(
            {"sentence": text, "seq_label": [[max(0, start), max(0, start) + len(s), "SYMPTOM"]], "sent_label": label}
        )
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    return path
