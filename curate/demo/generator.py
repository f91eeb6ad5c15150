"""A deterministic, seeded demo corpus that exercises every stage of the engine.

It mixes English and Vietnamese web documents and chat SFT records in a healthcare
and business theme, and plants what curation must catch: exact and near duplicates,
PII of many kinds, mojibake (UTF-8 read as cp1252, latin-1 or mac_roman), boilerplate
and spam, very short and very long junk, other languages, malformed lines, and an
imbalanced `label` whose association with `source` reverses within `domain` strata
(Simpson's paradox).
"""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

import ftfy.bad_codecs  # noqa: F401  (registers the sloppy-windows-1252 codec used for mojibake)
import orjson

from curate.demo import content as C
from curate.io.shards import atomic_write_bytes

# Chat records per (source, domain): vendor_a is mostly dermatology, vendor_b mostly
# cardiology. Within each domain vendor_a has the higher urgent rate, yet overall it
# has the lower one — the crude association reverses once stratified by domain.
SIMPSON = {
    ("vendor_a", "cardiology"): (0.10, 0.50),
    ("vendor_a", "dermatology"): (0.40, 0.10),
    ("vendor_b", "cardiology"): (0.40, 0.40),
    ("vendor_b", "dermatology"): (0.10, 0.05),
}  # (share of chat records, urgent rate)


def _fill(rng: random.Random, template: str, lang: str = "en") -> str:
    if lang == "vi":
        pools = {"org": C.VI_ORGS, "condition": C.VI_CONDITIONS, "treatment": C.VI_TREATMENTS, "dept": C.VI_DEPTS}
    else:
        pools = {
            "org": C.EN_ORGS,
            "dept": C.EN_DEPTS,
            "metric": C.EN_METRICS,
            "condition": C.EN_CONDITIONS,
            "treatment": C.EN_TREATMENTS,
            "clinician": C.EN_CLINICIANS,
            "period": C.EN_PERIODS,
            "role": C.EN_ROLES,
        }
    values = {k: rng.choice(v) for k, v in pools.items()}
    values.update(pct=rng.randint(3, 45), num=rng.randint(2, 900))
    return _sprinkle(rng, template.format(**values), C.VI_FILLERS if lang == "vi" else C.EN_FILLERS)


def _sprinkle(rng: random.Random, sentence: str, fillers: list[str]) -> str:
    """Insert a filler word about every five words, so no long span repeats across documents."""
    words = sentence.split(" ")
    for _ in range(len(words) // 5):
        words.insert(rng.randint(1, len(words) - 1), rng.choice(fillers))
    return " ".join(words)


def _luhn_complete(prefix: str) -> str:
    digits = [int(d) for d in prefix]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return prefix + str((10 - total % 10) % 10)


def _pii_sentence(rng: random.Random, lang: str) -> str:
    first, last = rng.choice(C.FIRST_NAMES), rng.choice(C.LAST_NAMES)
    # a mail provider's domain: example.com is a documentation domain, no one's address, and is left alone
    email = f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@{rng.choice(C.MAIL_DOMAINS)}"
    phone = f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
    if lang == "vi":
        vi_options = [
            f"Liên hệ {rng.choice(C.VI_NAMES)} qua số điện thoại +84 9{rng.randint(10000000, 99999999)} để được tư "
            "vấn.",
            f"Số CCCD của bệnh nhân là 0{rng.randint(10, 99)}{rng.randint(1000000000, 9999999999)}.",
            f"Gửi hồ sơ về email {email} hoặc gọi 09{rng.randint(10000000, 99999999)}.",
        ]
        return rng.choice(vi_options)
    options = [
        f"For appointments contact {first} {last} at {email} or call {phone}.",
        f"The patient {first} {last}, MRN {rng.randint(1000000, 9999999)}, was discharged on Tuesday.",
        f"SSN on file: {rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}.",
        f"Card used for the copay: {_luhn_complete('4' + ''.join(str(rng.randint(0, 9)) for _ in range(14)))}.",
        f"Mail the forms to {rng.randint(10, 9999)} {rng.choice(C.STREETS)}, {rng.choice(C.CITIES)}.",
        "The portal was accessed from IP "
        f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}.",
        f"Use the key AKIA{''.join(rng.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567') for _ in range(16))} for the upload "
        "script.",
        f"Referring provider NPI 1{rng.randint(100000000, 999999999)}.",
    ]
    return rng.choice(options)


def _document(rng: random.Random, lang: str) -> str:
    sentences = C.VI_SENTENCES if lang == "vi" else C.EN_SENTENCES
    titles = C.VI_TITLES if lang == "vi" else C.EN_TITLES
    # Each template at most once per document, as a real article does not repeat itself.
    pool = rng.sample(sentences, len(sentences))
    paragraphs = [_fill(rng, rng.choice(titles), lang)]
    while len(pool) >= 2 and len(paragraphs) < 7:
        take = min(len(pool), rng.randint(2, 4))
        paragraphs.append(" ".join(_fill(rng, pool.pop(), lang) for _ in range(take)))
    if rng.random() < 0.2:
        paragraphs.insert(rng.randint(1, len(paragraphs)), _pii_sentence(rng, lang))
    return "\n\n".join(paragraphs)


def _mojibake(text: str, rng: random.Random) -> str:
    codec = rng.choice(["sloppy-windows-1252", "latin-1", "mac_roman"])
    return text.encode("utf-8").decode(codec)


def _near_duplicate(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(words))
        words[i] = words[i].upper() if rng.random() < 0.5 else words[i] + ","
    return " ".join(words) + rng.choice(["", "\n\nUpdated this week.", " Read more below."])


def _junk(rng: random.Random, kind: str) -> str:
    if kind == "spam":
        return "\n".join(rng.choice(C.SPAM_LINES) for _ in range(rng.randint(8, 20)))
    if kind == "boilerplate":
        return "\n".join(C.BOILERPLATE * rng.randint(2, 4))
    if kind == "short":
        return rng.choice(["ok", "Click here", "Loading...", "404 Not Found", "Thanks!!"])
    if kind == "long":
        return " ".join([rng.choice(C.KEYWORDS)] * rng.randint(20_000, 40_000))
    if kind == "keywords":
        return " ".join(rng.choice(C.KEYWORDS) for _ in range(rng.randint(80, 200)))
    return (
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore. " * 12
    ).strip()


def _web_records(rng: random.Random, n: int, lang: str, prefix: str) -> list[dict]:
    records: list[dict] = []
    for i in range(n):
        roll = rng.random()
        if records and roll < 0.04:
            text = rng.choice(records)["text"]  # exact duplicate
        elif records and roll < 0.08:
            text = _near_duplicate(rng.choice(records)["text"], rng)
        else:
            text = _document(rng, lang)
        if rng.random() < (0.12 if lang == "vi" else 0.04):
            text = _mojibake(text, rng)
        if lang == "vi" and rng.random() < 0.1:
            text = text.replace("ệ", "ê\u0323")  # decomposed diacritics, as some editors save them
        records.append(
            {
                "id": f"{prefix}-{i:06d}",
                "text": text,
                "source": rng.choice(["crawl_a", "crawl_b", "partner_feed"]),
                "url": f"https://{prefix}.example.org/articles/{i}",
            }
        )
    return records


def _chat_records(rng: random.Random, n: int) -> list[dict]:
    records = []
    cells = list(SIMPSON.items())
    for i in range(n):
        (source, domain), (_, urgent_rate) = cells[_pick(rng, [share for _, (share, _) in cells])]
        label = "urgent" if rng.random() < urgent_rate else "routine"
        if rng.random() < 0.08:
            question, answer, label, domain = rng.choice([c for c in C.VI_CHAT if c[3] == domain] or C.VI_CHAT)
        elif records and rng.random() < 0.05:
            # planted duplicates: the same prompt asked again, verbatim or lightly edited
            question = records[rng.randrange(len(records))]["messages"][-2]["content"]
            if rng.random() < 0.5:
                question = _near_duplicate(question, rng)
            answer = rng.choice(C.CHAT_ANSWERS[label])
        else:
            question = _chat_prompt(rng, domain, label)
            answer = rng.choice(C.CHAT_ANSWERS[label])
            if rng.random() < 0.1:
                question = f"{question} {_pii_sentence(rng, 'en')}"
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        if rng.random() < 0.3:
            messages.insert(
                0,
                {"role": "system", "content": "You are a careful triage assistant for a clinic. You do not diagnose."},
            )
        if rng.random() < 0.01:
            messages[-1]["content"] = ""  # an empty assistant turn
        records.append(
            {
                "id": f"chat-{i:06d}",
                "messages": messages,
                "label": label,
                "source": source,
                "domain": domain,
                "annotator": f"ann{rng.randint(1, 12):02d}",
            }
        )
    return records


def _chat_prompt(rng: random.Random, domain: str, label: str) -> str:
    values = {
        "age": rng.randint(18, 90),
        "n": rng.randint(2, 30),
        "relative": rng.choice(C.RELATIVES),
        "drug": rng.choice(C.DRUGS),
        "condition": rng.choice(C.EN_CONDITIONS),
    }
    parts = [
        rng.choice(C.CHAT_CONTEXTS),
        rng.choice(C.CHAT_DOMAINS[domain][label]),
        rng.choice(C.CHAT_DETAILS),
        rng.choice(C.CHAT_QUESTIONS),
    ]
    return _sprinkle(rng, " ".join(parts).format(**values), C.EN_FILLERS)


def _pick(rng: random.Random, weights: list[float]) -> int:
    return rng.choices(range(len(weights)), weights=weights)[0]


def _alpaca_records(rng: random.Random, n: int) -> list[dict]:
    records = []
    for _ in range(n):
        instruction, inp, output = rng.choice(C.INSTRUCTIONS)
        records.append(
            {
                "instruction": _fill(rng, instruction),
                "input": _fill(rng, inp),
                "output": _fill(rng, output),
                "source": "self_written",
                "domain": "operations",
            }
        )
    return records


def _sharegpt_records(rng: random.Random, n: int) -> list[dict]:
    records = []
    for _ in range(n):
        topic = rng.choice(C.EN_CONDITIONS)
        records.append(
            {
                "conversations": [
                    {"from": "human", "value": f"What lifestyle changes help with {topic}?"},
                    {"from": "gpt", "value": _fill(rng, "Many people with {condition} benefit from {treatment}. " * 2)},
                    {"from": "human", "value": "Thanks. Anything to avoid?"},
                    {
                        "from": "gpt",
                        "value": (
                            "Avoid stopping any medicine on your own, and ask your clinician before starting "
                            "supplements."
                        ),
                    },
                ],
                "source": "forum_export",
                "domain": "general",
            }
        )
    return records


def _bad_lines(rng: random.Random, prefix: str) -> list[bytes]:
    """Rows that must be quarantined, each for a different reason."""
    return [
        b'{"id": "broken-1", "text": "unterminated string}\n',
        b'{"text": "invalid bytes \xff\xfe here"}\n',
        b"{}\n",
        b'{"title": "a record with no text field"}\n',
        b'{"text": 42}\n',
        b'{"messages": "not a list"}\n',
        b'{"text": "   "}\n',
        b'["a", "list", "not", "an", "object"]\n',
        orjson.dumps({"id": f"{prefix}-000001", "text": "This id repeats one used earlier in the file."}) + b"\n",
        orjson.dumps({"text": "x" * 2_100_000}) + b"\n",
    ]


def _jsonl(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def _interleave(rng: random.Random, good: bytes, bad: list[bytes]) -> bytes:
    lines = good.splitlines(keepends=True)
    for line in bad:
        lines.insert(rng.randint(1, len(lines)), line)
    return b"".join(lines)


def generate(out_dir: Path, records: int = 20_000, seed: int = 13) -> list[Path]:
    """Write the demo corpus files under `out_dir`; same arguments, same bytes."""
    rng = random.Random(seed)
    n_en, n_vi, n_chat = int(records * 0.36), int(records * 0.13), int(records * 0.40)
    n_alpaca, n_sharegpt = int(records * 0.06), int(records * 0.03)
    n_junk = records - n_en - n_vi - n_chat - n_alpaca - n_sharegpt
    web_en = _web_records(rng, n_en, "en", "en")
    kinds = ["spam", "boilerplate", "short", "long", "keywords", "lorem"]
    junk = [
        {"id": f"junk-{i:05d}", "text": _junk(rng, kinds[i % len(kinds)]), "source": "crawl_b"}
        for i in range(max(0, n_junk - 30))
    ]
    other = [
        {"id": f"xx-{i:05d}", "text": " ".join(rng.choice(v) for _ in range(4)), "source": "crawl_a"}
        for i, v in enumerate(rng.choice(list(C.OTHER_LANG_DOCS.values())) for _ in range(min(30, n_junk)))
    ]
    web_en += junk + other
    rng.shuffle(web_en)
    files = {
        "web_en.jsonl.gz": _interleave(rng, _jsonl(web_en), _bad_lines(rng, "en")),
        "web_vi.jsonl": _jsonl(_web_records(rng, n_vi, "vi", "vi")),
        "chat_sft.jsonl": _jsonl(_chat_records(rng, n_chat)),
        "alpaca.jsonl": _jsonl(_alpaca_records(rng, n_alpaca)),
        "sharegpt.jsonl": _jsonl(_sharegpt_records(rng, n_sharegpt)),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = out_dir / name
        atomic_write_bytes(path, gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        paths.append(path)
    return paths


def _generator_fingerprint() -> str:
    digest = hashlib.sha256()
    for mod in ("generator.py", "content.py"):
        digest.update((Path(__file__).parent / mod).read_bytes())
    return digest.hexdigest()[:12]


def ensure_demo_corpus(records: int, seed: int) -> list[Path]:
    """The demo corpus files, generated once into the curate home and reused after."""
    from curate.catalog import curate_home

    folder = curate_home() / "demo" / f"{records}-{seed}-{_generator_fingerprint()}"
    marker = folder / "complete"
    if not marker.is_file():
        paths = generate(folder, records, seed)
        atomic_write_bytes(marker, "\n".join(p.name for p in paths).encode())
    return [folder / name for name in marker.read_text().splitlines()]
