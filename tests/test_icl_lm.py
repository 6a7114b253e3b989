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
