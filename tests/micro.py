"The micro experiment the tests (and `benchmarks/gpu_pipeline.py`) run: a 3-model tiny family and a local imdb-shaped dataset."
from pathlib import Path

import pandas as pd

from explainable_soft_prompts.data import tiny_tokenizer
from explainable_soft_prompts.models import tiny_family

WORDS = ["good", "bad", "great", "awful", "movie", "film", "the", "was", "a", "plot", "not", "neg", "##ative", "pos", "##itive"]


def micro_setup(root: Path):
    "A 3-model tiny family and a local imdb-shaped dataset of a few dozen rows."
    tok = tiny_tokenizer(WORDS)
    tiny_family(3, tok, hidden_size=16, folder=root / "family")
    (root / "data" / "imdb").mkdir(parents=True, exist_ok=True)
    rows = [{"text": f"the movie was {w} {w}", "label": int(w in ("good", "great"))} for w in ["good", "bad", "great", "awful"] * 15]
    pd.DataFrame(rows).to_json(root / "data" / "imdb" / "train.jsonl", orient="records", lines=True)
    return {"run_name": "micro", "task": "imdb", "data_source": "local", "data_dir": str(root / "data"), "split_sizes": [32, 12, 12],
            "family_dir": str(root / "family"), "build_family": False, "max_length": 32, "output_dir": str(root / "outputs"),
            "prompts": {"1_model_0": [0], "1_model_1": [1], "2_model_0": [0, 1], "2_model_1": [1, 2],
                        "2_model_init_1": {"models": [0, 1], "init_seed": 7}},
            "prompt_length": 4, "epochs": 2, "batch_size": 8, "lr": 0.3, "analysis": {"random_seeds": 2, "vocabulary_sample": 10}}
