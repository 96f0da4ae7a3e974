"""Times AdaptLLM's own raw-text -> reading-comprehension conversion (the baseline of
`cargo bench -p graft-data --bench augment`).

Usage: python3 adaptllm_original.py ADAPTLLM_DIR TEXTS.jsonl DOMAIN

ADAPTLLM_DIR is the `adaptllm` folder of a microsoft/LMOps checkout (its `utils/read.py` and
`data_samples/{general,domain}.spm` are used as they are). Needs `pip install pysbd sentencepiece
numpy`. Does per text what LMOps's `raw2read.py` does (title = first line, truncation, pysbd
segmentation, mining, `format_recomprehension`) in a process pool of one worker per core, as
raw2read does, and prints one JSON line: {"docs": N, "seconds": S, "workers": W}.
Only the conversion is timed, not loading the sentencepiece models.
"""

import copy
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

ADAPTLLM, TEXTS, DOMAIN = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, ADAPTLLM)

from pysbd import Segmenter  # noqa: E402
from utils.read import TYPES, type_map  # noqa: E402

GENERAL = os.path.join(ADAPTLLM, "data_samples", "general.spm")
DOMAIN_SPM = os.path.join(ADAPTLLM, "data_samples", "domain.spm")

_state = {}


def _init():
    inited = {}
    for name in TYPES:
        cls = type_map.cls_dic[name]()
        cls.init_spm(GENERAL, DOMAIN_SPM)
        inited[name] = cls
    overall = type_map.cls_dic["overall"]()
    overall.init_spm(GENERAL, DOMAIN_SPM)
    _state.update(types=inited, overall=overall, seg=Segmenter(language="en", clean=False))


def _convert(item):
    text_id, text = item
    types, overall, seg = _state["types"], _state["overall"], _state["seg"]
    title = text.split("\n")[0]
    context = "\n".join(text.split("\n")[1:])
    context = overall.truncate_sentence(context, max_len=overall.max_seq_len - 200)
    sents = seg.segment(context)
    entry = {"text_id": text_id}
    for name in TYPES:
        entry[name], _ = types[name].mine(
            text=context, domain=DOMAIN, title=title, sents=copy.deepcopy(sents)
        )
    read_compre, _ = overall.format_recomprehension(copy.deepcopy(entry))
    return len(read_compre)


def main():
    with open(TEXTS, encoding="utf8") as f:
        texts = [json.loads(line)["text"].strip() for line in f if line.strip()]
    workers = os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=workers, initializer=_init) as pool:
        # warm the workers (model loading is not timed)
        list(pool.map(_convert, [(0, "t\nWarm up. Two sentences.")] * workers))
        start = time.perf_counter()
        list(pool.map(_convert, enumerate(texts), chunksize=64))
        seconds = time.perf_counter() - start
    print(json.dumps({"docs": len(texts), "seconds": seconds, "workers": workers}))


if __name__ == "__main__":
    main()
