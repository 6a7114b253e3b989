"""The language-model half of icl_landscape: corpus, tokenizer, model and head scores."""

import json
import math
import sys

import numpy as np
import pytest
import torch

from sltrepro.models.attn_lm import AttnOnlyLM, induction_scores, previous_token_scores
from sltrepro.tasks import corpus


@pytest.fixture(scope="module")
def small_corpus() -> str:
    return corpus.stdlib_corpus(60_000)


@pytest.fixture(scope="module")
def tokenizer(small_corpus) -> corpus.ByteBPE:
    return corpus.ByteBPE.train(small_corpus, 400)


def test_stdlib_corpus_identical_across_runs(small_corpus):
    again = corpus.stdlib_corpus(60_000)
    assert again == small_corpus
    assert corpus.corpus_fingerprint(again) == corpus.corpus_fingerprint(small_corpus)
    assert len(small_corpus) == 60_000
    assert small_corpus.startswith('The "assert" statement')  # pydoc topics come first


def test_stdlib_corpus_prefix_is_stable():
    # a larger cut starts with exactly the smaller one: selection does not depend on size
    assert corpus.stdlib_corpus(600_000)[:50_000] == corpus.stdlib_corpus(50_000)


def test_tokenizer_round_trip(tokenizer, small_corpus):
    tricky = "naïve café — 日本語\t\tx_1 = f'{a!r}'\r\n  __init__(self)  \n\n😀 it's 3.14"
    for text in (tricky, small_corpus[:5000], "", " ", "\n"):
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.vocab_size == 400
    ids = tokenizer.encode(small_corpus[:5000])
    assert len(ids) < 0.7 * len(small_corpus[:5000].encode())  # merges compress


def test_tokenizer_deterministic_and_serialisable(tokenizer, small_corpus):
    again = corpus.ByteBPE.train(small_corpus, 400)
    assert again.merges == tokenizer.merges
    loaded = corpus.ByteBPE.from_json(tokenizer.to_json())
    assert loaded.encode("def f(x): return x") == tokenizer.encode("def f(x): return x")
    with pytest.raises(ValueError, match="vocab_size"):
        corpus.ByteBPE.train("abc", 100)


def test_loader_on_small_local_files(tmp_path):
    records = [{"text": "first document"}, {"text": "second one"}, {"text": "third"}]
    jsonl = tmp_path / "tiny.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    text = corpus.load_text_corpus(str(jsonl), num_chars=1000)
    assert text == "first document\n\nsecond one\n\nthird"
    assert corpus.load_text_corpus(str(jsonl), num_chars=20) == text[:20]
    txt = tmp_path / "tiny.txt"
    txt.write_text("plain text file")
    assert corpus.build_corpus(str(txt), num_chars=5) == "plain"
    with pytest.raises(KeyError, match="contents"):
        corpus.load_text_corpus(str(jsonl), num_chars=100, text_field="contents")


def test_loader_without_datasets_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ImportError, match="datasets"):
        corpus.load_text_corpus("someone/some-hub-dataset", num_chars=10)


def test_bigram_table_and_ngrams():
    tokens = np.array([0, 1, 2, 0, 1, 2, 0, 1, 3])
    table = corpus.bigram_table(tokens, 4, smoothing=0.0 + 1e-12)
    np.testing.assert_allclose(table.sum(1), 1.0)
    assert table[0, 1] == pytest.approx(1.0)
    assert table[1, 2] == pytest.approx(2 / 3)
    top = corpus.top_ngrams(tokens, 3, 2, 4)
    np.testing.assert_array_equal(top, [[0, 1, 2], [1, 2, 0]])


def test_model_parameter_count_paper_shape():
    model = AttnOnlyLM(5000, d_model=256, n_heads=8, d_head=32, context=1024)
    # embed + unembed 2 * 5000 * 256, positions 1024 * 256, 2 layers of 4 * 256^2, 3 LNs
    expected = 2 * 5000 * 256 + 1024 * 256 + 2 * 4 * 256 * 256 + 3 * 2 * 256
    assert model.num_params() == expected
    assert abs(expected - 3.4e6) < 0.1e6  # the paper's ~3.4M


def test_model_is_causal():
    model = AttnOnlyLM(50, d_model=16, n_heads=2, d_head=8, context=12)
    x = torch.randint(50, (2, 12))
    y = x.clone()
    y[:, 7:] = (y[:, 7:] + 1) % 50
    torch.testing.assert_close(model(x)[:, :7], model(y)[:, :7])


def hand_built_induction_model(vocab: int, context: int) -> AttnOnlyLM:
    """Layer 0: a previous-token head copying the previous token into its own subspace;
    layer 1: a head whose query (current token) matches keys whose previous token equals it.

    Residual stream = [current token (V) | previous token (V) | position (T)], no LayerNorm.
    """
    d = 2 * vocab + context
    model = AttnOnlyLM(vocab, d_model=d, n_heads=1, d_head=d, context=context, layer_norm=False)
    sharp = 30.0 * math.sqrt(d)  # softmax temperature: near one-hot attention
    tok, prev, pos = slice(0, vocab), slice(vocab, 2 * vocab), slice(2 * vocab, d)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.weight[:, tok] = torch.eye(vocab)
        model.pos[:, pos] = torch.eye(context)
        wq0, wk0, wv0 = model.blocks[0].qkv.weight.view(3, d, d)
        wq0[pos, pos] = sharp * torch.diag(
            torch.ones(context - 1), 1
        )  # query at t looks for position t-1
        wk0[pos, pos] = torch.eye(context)
        wv0[tok, tok] = torch.eye(vocab)
        model.blocks[0].out.weight[prev, tok] = torch.eye(vocab)  # write token into "prev"
        wq1, wk1, _ = model.blocks[1].qkv.weight.view(3, d, d)
        wq1[tok, tok] = sharp * torch.eye(vocab)
        wk1[tok, prev] = torch.eye(vocab)  # key: the token before the key position
    return model


def test_induction_score_high_on_hand_built_head_low_on_random_model():
    vocab, context, half = 300, 64, 30
    gen = torch.Generator().manual_seed(0)
    built = hand_built_induction_model(vocab, context)
    scores = induction_scores(built, vocab, half, 16, gen)
    assert scores.shape == (2, 1)
    assert scores[1, 0] > 0.85  # the induction head
    assert scores[0, 0] < 0.1  # the previous-token head is not one
    prev = previous_token_scores(built, torch.randint(vocab, (4, context), generator=gen))
    assert prev[0, 0] > 0.95

    random_model = AttnOnlyLM(vocab, d_model=64, n_heads=4, d_head=16, context=context)
    random_scores = induction_scores(random_model, vocab, half, 16, gen)
    assert random_scores.max() < 0.1


def test_induction_score_draws_only_the_given_tokens():
    """The LM half passes the ids that occur in training: the others keep their initial
    embeddings, which a trained induction head cannot match."""
    vocab, context, half = 300, 64, 30
    built = hand_built_induction_model(vocab, context)
    seen = []
    run = built.run
    built.run = lambda tokens: seen.append(tokens) or run(tokens)
    pool = torch.arange(0, vocab, 3)  # 100 of the 300 ids
    scores = induction_scores(built, vocab, half, 8, torch.Generator().manual_seed(0), tokens=pool)
    assert set(seen[0].unique().tolist()) <= set(pool.tolist())
    assert scores[1, 0] > 0.8  # still the induction head


def test_training_resumes_to_the_same_weights(tmp_path):
    from sltrepro.train.lm import LMTrainConfig, train_lm

    tokens = torch.randint(40, (2000,), generator=torch.Generator().manual_seed(0))

    def run(outdir, steps):
        torch.manual_seed(0)
        model = AttnOnlyLM(40, d_model=16, n_heads=2, d_head=8, context=16)
        cfg = LMTrainConfig(
            steps=steps,
            batch_size=4,
            context=16,
            lr=1e-3,
            weight_decay=0.05,
            seed=1,
            snapshot_steps=[0, 2, 4],
            resume_every=2,
            log_every=1,
        )
        history = train_lm(model, tokens, cfg, outdir)
        return model, history

    straight, hist_a = run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)  # "interrupted" after 2 steps (state saved at step 2)
    resumed, hist_b = run(tmp_path / "b", 4)
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    assert hist_a["loss"].tolist() == hist_b["loss"].tolist()
    assert (tmp_path / "a" / "checkpoints" / "step0000004.pt").exists()


# -- repeated spans in the training windows --------------------------------------------------
def _windows(num=400, length=65, seed=0):
    # distinct values per position so that any copy is visible
    return torch.arange(num * length).reshape(num, length)


def test_repeat_spans_repeat_a_span_later_in_the_window():
    spans = corpus.RepeatSpans(fraction=1.0, min_len=4, max_len=12)
    windows = _windows()
    out = spans.apply(windows, torch.Generator().manual_seed(3))
    lengths = set()
    for before, after in zip(windows, out, strict=True):
        changed = (before != after).nonzero().flatten()
        assert len(changed) > 0
        dst, span = int(changed[0]), len(changed)
        assert changed.tolist() == list(range(dst, dst + span))  # one contiguous block
        assert 4 <= span <= 12
        src = int((before == after[dst]).nonzero()[0, 0])
        # an earlier, non-overlapping span of the same window, copied in order
        assert src + span <= dst
        assert after[dst : dst + span].tolist() == before[src : src + span].tolist()
        assert after[src : src + span].tolist() == before[src : src + span].tolist()
        lengths.add(span)
    assert lengths == set(range(4, 13))  # the whole length range is used


def test_repeat_spans_fraction_respected():
    spans = corpus.RepeatSpans(fraction=0.3, min_len=2, max_len=8)
    out = spans.apply(_windows(num=4000), torch.Generator().manual_seed(0))
    picked = (out != _windows(num=4000)).any(dim=1).float().mean().item()
    assert abs(picked - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 4000)


def test_repeat_spans_deterministic_and_zero_is_identity():
    spans = corpus.RepeatSpans(fraction=0.5, min_len=3, max_len=30)
    a = spans.apply(_windows(), torch.Generator().manual_seed(7))
    b = spans.apply(_windows(), torch.Generator().manual_seed(7))
    c = spans.apply(_windows(), torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert corpus.RepeatSpans.from_config(None) is None
    assert corpus.RepeatSpans.from_config({"fraction": 0, "min_len": 4, "max_len": 8}) is None
    block = {"fraction": 0.5, "min_len": 3, "max_len": 30}
    assert corpus.RepeatSpans.from_config(block) == spans


def test_repeat_spans_bad_settings_say_which():
    with pytest.raises(ValueError, match="fraction"):
        corpus.RepeatSpans(fraction=1.5, min_len=2, max_len=4)
    with pytest.raises(ValueError, match="min_len <= max_len"):
        corpus.RepeatSpans(fraction=0.5, min_len=9, max_len=4)
    with pytest.raises(ValueError, match="too long"):
        corpus.RepeatSpans(fraction=0.5, min_len=2, max_len=40).apply(
            _windows(length=65), torch.Generator()
        )


def test_training_without_repeat_spans_is_unchanged(tmp_path):
    """A `language:` block without `repeat_spans`, or with fraction 0, trains exactly as
    before (same losses: no random number is drawn for spans); fraction > 0 differs."""
    import logging

    from sltrepro.papers.icl_landscape import lm_pipeline
    from sltrepro.train.lm import snapshot_path

    tokens = np.random.default_rng(0).integers(40, size=3000).astype(np.int32)
    cfg = {
        "val_fraction": 0.1,
        "n_layers": 2,
        "d_model": 16,
        "n_heads": 2,
        "d_head": 8,
        "context": 32,
        "steps": 6,
        "batch_size": 4,
        "lr": 1e-3,
        "weight_decay": 0.05,
        "num_log_checkpoints": 2,
        "num_linear_checkpoints": 1,
    }

    def final_weights(name, **extra):
        log = logging.getLogger("test")
        lm_pipeline.train({**cfg, **extra}, 0, tokens, 40, tmp_path / name, "cpu", log)
        return torch.load(snapshot_path(tmp_path / name / "checkpoints", cfg["steps"]))

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    plain = final_weights("plain")
    zero = final_weights("zero", repeat_spans={"fraction": 0.0, "min_len": 2, "max_len": 4})
    spans = final_weights("spans", repeat_spans={"fraction": 1.0, "min_len": 2, "max_len": 4})
    assert same(plain, zero)
    assert not same(plain, spans)


@pytest.mark.parametrize(
    ("spans", "key"),
    [
        ({"fraction": 1.2, "min_len": 4, "max_len": 8}, "language.repeat_spans.fraction"),
        ({"fraction": 0.5, "min_len": 0, "max_len": 8}, "language.repeat_spans.min_len"),
        ({"fraction": 0.5, "min_len": 4}, "language.repeat_spans"),
        ({"fraction": 0.5, "min_len": 4, "max_len": 8, "rate": 1}, "language.repeat_spans"),
    ],
)
def test_repeat_spans_config_is_validated(spans, key):
    from sltrepro.config import ConfigError, load_profile, read_yaml, validate_block
    from sltrepro.paths import paper_dir

    block = load_profile("icl_landscape", "cpu")
    schema = read_yaml(paper_dir("icl_landscape") / "config.schema.yaml")
    bad = {**block, "language": {**block["language"], "repeat_spans": spans}}
    with pytest.raises(ConfigError, match=f"key {key}"):
        validate_block(bad, schema, where="cpu")
