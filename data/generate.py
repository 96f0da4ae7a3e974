#!/usr/bin/env python3
"""Writes graft's small sample corpora (data/*/). Deterministic: `python3 data/generate.py`.

All text is original, composed by this script from sentence patterns written for graft; it describes
fictional studies, compounds and companies. Released under CC0 1.0 (public domain dedication).
"""
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent
rng = random.Random(20240611)

# ---------------------------------------------------------------- biomedicine
DRUGS = ["veltamizole", "orbanitide", "caprelumab", "tesofuridine", "marovastatin", "dilexopril",
         "quinaferon", "bretazolam", "sumeridone", "palocitinib", "hexarotide", "luvestrant"]
CONDITIONS = ["hypertension", "type 2 diabetes", "rheumatoid arthritis", "chronic kidney disease",
              "asthma", "migraine", "atrial fibrillation", "psoriasis", "osteoporosis", "major depression"]
TARGETS = ["the angiotensin receptor", "a kinase in the JAK family", "the serotonin transporter",
           "an enzyme of cholesterol synthesis", "the interleukin-6 receptor", "a bacterial cell-wall protein",
           "the GLP-1 receptor", "a calcium channel in vascular muscle"]
OUTCOMES = ["systolic blood pressure", "fasting glucose", "joint swelling", "the rate of hospital admission",
            "bone mineral density", "the number of monthly headache days", "a symptom score", "kidney function"]
SIDE = ["nausea", "headache", "dizziness", "mild rash", "fatigue", "raised liver enzymes", "dry mouth"]
DESIGNS = ["a randomized, double-blind, placebo-controlled trial", "an open-label pilot study",
           "a prospective cohort study", "a crossover trial", "a multicentre randomized trial"]


def biomed_example(i):
    d, c, t = rng.choice(DRUGS), rng.choice(CONDITIONS), rng.choice(TARGETS)
    o, s1, s2 = rng.choice(OUTCOMES), *rng.sample(SIDE, 2)
    design, n, weeks = rng.choice(DESIGNS), rng.randrange(40, 900, 4), rng.choice([8, 12, 16, 24, 26, 52])
    drop, base = rng.randint(8, 35), rng.randint(20, 60)
    pct_side = rng.randint(3, 18)
    text = (
        f"Study {i + 1}. Investigators evaluated {d}, an agent that acts on {t}, in adults with {c}. "
        f"The work was designed as {design} and enrolled {n} participants, who were followed for {weeks} weeks. "
        f"The primary outcome was the change in {o} from baseline. At the end of follow-up, {o} had improved by "
        f"{drop} percent in the {d} group compared with {max(1, drop // 4)} percent in the control group. "
        f"The most common adverse events were {s1} and {s2}; {s1} was reported by {pct_side} percent of treated "
        f"participants and usually resolved without stopping treatment. "
        f"Participants had a mean age of {base + 10} years, and about half were women. "
        f"The authors note that the trial was not large enough to detect rare harms and that longer studies are needed "
        f"before {d} can be recommended for routine care of {c}."
    )
    pairs = [
        (f"Which condition was {d} studied in?", f"It was studied in adults with {c}."),
        ("How many participants were enrolled?", f"{n} participants were enrolled."),
        (f"What does {d} act on?", f"It acts on {t}."),
        ("What was the primary outcome?", f"The change in {o} from baseline."),
        (f"By how much did {o} improve with {d}?", f"By {drop} percent, versus {max(1, drop // 4)} percent with control."),
        ("Which adverse events were most common?", f"{s1.capitalize()} and {s2}."),
        ("Is the evidence enough for routine use? Explain.",
         f"No. The authors say the study was too small to detect rare harms and that longer studies are needed."),
        (f"How long were participants followed?", f"For {weeks} weeks."),
    ]
    return text, rng.sample(pairs, rng.randint(3, 5))


# ---------------------------------------------------------------- finance
FIRMS = ["Harlow Freight", "Nordvik Paper", "Cassel Microdevices", "Orrin Foods", "Tamsin Energy", "Bellweather Retail",
         "Quill Software", "Redfern Mining", "Ostara Pharmaceuticals", "Lumen Water Utilities", "Greyhaven Insurance"]
SECTORS = {"Harlow Freight": "logistics", "Nordvik Paper": "packaging", "Cassel Microdevices": "semiconductors",
           "Orrin Foods": "consumer staples", "Tamsin Energy": "renewable power", "Bellweather Retail": "retail",
           "Quill Software": "enterprise software", "Redfern Mining": "metals and mining",
           "Ostara Pharmaceuticals": "pharmaceuticals", "Lumen Water Utilities": "utilities",
           "Greyhaven Insurance": "insurance"}
DRIVERS = ["higher average selling prices", "lower input costs", "stronger demand in Asia", "a one-off tax credit",
           "cost cuts in its distribution network", "growth in subscription revenue", "a weaker currency"]
RISKS = ["rising interest rates", "a slowdown in consumer spending", "regulatory review of its pricing",
         "volatile commodity prices", "customer concentration", "refinancing of maturing debt"]


def finance_example(i):
    f = rng.choice(FIRMS)
    sec, drv, risk = SECTORS[f], rng.choice(DRIVERS), rng.choice(RISKS)
    rev = rng.randint(120, 4800)
    growth = rng.randint(-9, 24)
    margin = rng.randint(4, 31)
    eps, eps_prev = round(rng.uniform(0.2, 6.0), 2), 0.0
    eps_prev = round(eps / (1 + growth / 100) if growth != -100 else eps, 2)
    div = round(eps * rng.uniform(0.2, 0.6), 2)
    debt = round(rng.uniform(0.2, 3.5), 1)
    q = rng.choice(["first", "second", "third", "fourth"])
    tone = "raised" if growth > 8 else ("kept" if growth >= 0 else "cut")
    text = (
        f"Report {i + 1}. {f}, a company in the {sec} sector, reported {q}-quarter revenue of {rev} million dollars, "
        f"a change of {growth} percent from a year earlier. Operating margin was {margin} percent. Management attributed "
        f"the result mainly to {drv}. Earnings per share came to {eps} dollars, against {eps_prev} dollars in the same "
        f"quarter last year, and the board declared a quarterly dividend of {div} dollars per share. "
        f"Net debt stood at {debt} times annual operating profit. The company {tone} its full-year guidance and named "
        f"{risk} as the main risk to its outlook. Analysts described the quarter as "
        f"{'strong' if growth > 8 else ('steady' if growth >= 0 else 'weak')}."
    )
    sentiment = "positive" if growth > 8 else ("neutral" if growth >= 0 else "negative")
    pairs = [
        (f"What was {f}'s revenue in the quarter?", f"{rev} million dollars."),
        ("Did revenue grow or shrink, and by how much?",
         f"It {'grew' if growth >= 0 else 'shrank'} by {abs(growth)} percent year on year."),
        ("What explains the result, according to management?", f"Mainly {drv}."),
        (f"Headline: \"{f} {tone} guidance after {q}-quarter results\". Is the sentiment positive, neutral or negative?",
         sentiment.capitalize() + "."),
        ("What is the main risk named by the company?", risk.capitalize() + "."),
        ("What share of earnings per share is paid out as the dividend? Answer in percent.",
         f"About {round(100 * div / eps)} percent, since {div} / {eps} is about {round(div / eps, 2)}."),
        ("Which sector does the company belong to?", f"The {sec} sector."),
        ("How leveraged is the company?", f"Net debt is {debt} times annual operating profit."),
    ]
    return text, rng.sample(pairs, rng.randint(3, 5))


def synth_output(pairs, broken):
    """The instruction synthesizer's raw output format, optionally with a malformed pair."""
    parts = [f"<QUE> {q} <ANS> {a} </END>" for q, a in pairs]
    if broken:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice([
            "<QUE> What else does the text say? </END>", "<ANS> an answer without a question </END>",
            "<QUE>  <ANS> empty question </END>"]))
    return "".join(parts)


def write_augmented(folder, make, n, files):
    (ROOT / folder).mkdir(exist_ok=True)
    per = n // files
    for f in range(files):
        with open(ROOT / folder / f"{folder}-{f:02}.jsonl", "w") as out:
            for i in range(f * per, (f + 1) * per):
                text, pairs = make(i)
                if i % 2 == 0:
                    rec = {"text": text, "qa_pairs": [{"question": q, "answer": a} for q, a in pairs]}
                else:
                    rec = {"text": text, "qa_pairs": synth_output(pairs, broken=(i % 6 == 1))}
                out.write(json.dumps(rec) + "\n")


# ---------------------------------------------------------------- general instructions
WORDS = ["apple", "river", "candle", "mountain", "whisper", "garden", "lantern", "pebble", "harbor", "meadow",
         "violin", "compass", "thunder", "orchard", "feather", "glacier", "marble", "saddle", "timber", "velvet"]


def general(i):
    k = i % 8
    if k == 0:
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."
    if k == 1:
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        return f"Multiply {a} by {b}.", f"{a} times {b} equals {a * b}."
    if k == 2:
        ws = rng.sample(WORDS, rng.randint(3, 6))
        return f"Sort these words alphabetically: {', '.join(ws)}.", ", ".join(sorted(ws)) + "."
    if k == 3:
        w = rng.choice(WORDS)
        return f"How many letters are in the word \"{w}\"?", f"The word \"{w}\" has {len(w)} letters."
    if k == 4:
        km = rng.randint(1, 200)
        return f"Convert {km} kilometres to metres.", f"{km} kilometres is {km * 1000} metres."
    if k == 5:
        a, b = rng.sample(range(1, 1000), 2)
        return f"Which number is larger, {a} or {b}?", f"{max(a, b)} is larger than {min(a, b)}."
    if k == 6:
        w = rng.choice(WORDS)
        return f"Write the word \"{w}\" backwards.", f"Backwards, \"{w}\" is \"{w[::-1]}\"."
    ws = rng.sample(WORDS, 3)
    return (f"Write one sentence that uses the words {ws[0]}, {ws[1]} and {ws[2]}.",
            f"Near the {ws[0]}, someone left a {ws[1]} beside an old {ws[2]}.")


def main():
    write_augmented("biomedicine", biomed_example, 180, 2)
    write_augmented("finance", finance_example, 180, 2)
    (ROOT / "general").mkdir(exist_ok=True)
    with open(ROOT / "general" / "general-00.jsonl", "w") as out:
        for i in range(800):
            q, a = general(i)
            out.write(json.dumps({"instruction": q, "output": a}) + "\n")
    (ROOT / "raw").mkdir(exist_ok=True)
    with open(ROOT / "raw" / "notes.txt", "w") as out:
        out.write("Notes on reading a clinical or financial report.\n\n"
                  "Start with the question the report tries to answer, then find the number that answers it. "
                  "Check what it is compared with: a control group, last year, or a forecast. "
                  "A change reported in percent needs its base; a small base makes any change look large. "
                  "Look for what the authors say they could not measure, and for who paid for the work. "
                  "Finally, ask whether the result would change a decision, and by how much.\n")


if __name__ == "__main__":
    main()
