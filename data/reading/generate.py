"""Writes biomedicine-raw.jsonl: fictional raw clinical notes (original text, CC0) with a title line and
the connectives AdaptLLM's rules mine, for the reading-comprehension sample recipe. Deterministic:
python3 data/reading/generate.py"""
import json, os, random

rng = random.Random(7)
DRUGS = ["palocitinib", "tesofuridine", "maravistat", "olentumab", "quinderazole", "veltroparin"]
CONDS = ["migraine", "psoriasis", "type 2 diabetes", "chronic kidney disease", "asthma", "gout"]
WORDS = ["hepatotoxicity", "nephrotoxicity", "immunotherapy", "pharmacokinetics", "thrombocytopenia",
         "bioavailability", "hyperglycaemia", "inflammation"]

def doc(i):
    d, c = rng.choice(DRUGS), rng.choice(CONDS)
    w = rng.sample(WORDS, 3)
    n = rng.randint(120, 900)
    return "\n".join([
        f"Clinical note {i}: {d} in {c}",
        f"This note summarises a fictional study. Investigators gave {d} to {n} adults with {c} for twelve weeks. "
        f"The treated group improved more than the control group on the primary outcome measure. "
        f"Therefore, the investigators plan a larger trial with a longer follow-up period next year.",
        f"Liver tests were checked every month during the whole treatment period of the study. "
        f"However, no participant stopped treatment because of abnormal liver tests in this trial. "
        f"Bioavailability is defined as the fraction of an oral dose that reaches the circulation unchanged. "
        f"Rates of {w[0]} and {w[1]} stayed low during {w[2]} in the treated group.",
        f"The blood pressure of several participants rose slightly during the second month of treatment. "
        f"Due to the small size of the study the authors could not say whether the rise was real. "
        f"More work is needed.",
    ])

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "biomedicine-raw.jsonl"), "w") as f:
    for i in range(1, 25):
        f.write(json.dumps({"text": doc(i)}) + "\n")
