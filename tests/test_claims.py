import json

import pandas as pd
import pytest

from sltrepro.claims import Band, check_claims, format_value, load_claims
from sltrepro.cli import main
from sltrepro.config import ConfigError


@pytest.mark.parametrize(
    ("band", "inside", "outside"),
    [
        ({"target": 1.0, "abs_tol": 0.1}, [0.9, 1.1], [0.89, 1.2, None, float("nan")]),
        ({"target": 2.0, "rel_tol": 0.15}, [1.7, 2.3], [1.69, 2.31]),
        ({"min": 0.95}, [0.95, 3.0], [0.94, True]),
        ({"max": 0.1}, [-1.0, 0.1], [0.11]),
        ({"min": -0.1, "max": 0.5}, [-0.1, 0.5], [-0.2, 0.6]),
        ({"equals": True}, [True], [False, None, 1]),
        ({"equals": 5}, [5, 5.0], [True, 4]),
    ],
)
def test_band_contains(band, inside, outside):
    b = Band(**band)
    assert all(b.contains(v) for v in inside)
    assert not any(b.contains(v) for v in outside)


@pytest.mark.parametrize(
    "band", [{"target": 1.0}, {"target": 1.0, "abs_tol": 1, "rel_tol": 1}, {"min": 0, "equals": 1}]
)
def test_malformed_band_is_an_error(band):
    with pytest.raises(ConfigError):
        Band(**band)


def write_claims(path, profiles=("smoke",)):
    path.write_text(
        f"""claims:
  - id: passes
    statement: A value inside its band.
    source: Table 1
    metric: a
    paper_value: 0.5
    band: {{target: 0.5, abs_tol: 0.1}}
    null_model: {{value: 0.0, source: "untrained model"}}
    justification: Twice the paper's reported standard deviation.
    profiles: {list(profiles)}
  - id: fails
    statement: A value outside its band.
    source: Fig. 2
    metric: b
    band: {{min: 0.95}}
    null_model: {{value: 0.5, source: "chance"}}
    justification: The threshold stated in the paper's text.
    profiles: {list(profiles)}
  - id: other_profile
    statement: Applies elsewhere only.
    source: Fig. 3
    metric: c
    band: {{max: 1}}
    null_model: {{value: 2, source: "a trivial predictor"}}
    justification: Checked only at the paper's scale.
    profiles: [paper]
"""
    )
    return path


def test_check_claims_table(tmp_path):
    claims = load_claims(path=write_claims(tmp_path / "claims.yaml"))
    table = check_claims(claims, {"a": 0.55, "b": 0.5}, "smoke")
    assert table["claim"].tolist() == ["passes", "fails"]
    assert table["status"].tolist() == ["pass", "fail"]
    assert check_claims(claims, {"a": 0.55}, "smoke")["status"].tolist() == ["pass", "fail"]


def test_claims_schema_errors_name_the_key(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text("claims:\n  - id: x\n    statement: s\n")
    with pytest.raises(ConfigError, match=r"claims\.0.*'source' is a required property"):
        load_claims(path=path)


def test_cli_claims_exit_code_and_csv(toy_root, tmp_path, capsys):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"mean": 0.1, "draws_ok": True}))
    out = tmp_path / "claims.csv"
    argv = ["claims", "toy", "--profile", "smoke", "--metrics", str(metrics), "--out", str(out)]
    assert main(argv) == 0
    assert "all pass: 1 of 1 claims pass; 1 of 1 checks pass" in capsys.readouterr().out
    metrics.write_text(json.dumps({"mean": 5.0, "draws_ok": True}))
    assert main(argv) == 1
    assert "FAILED: mean_near_zero" in capsys.readouterr().out
    assert pd.read_csv(out)["status"].tolist() == ["fail", "pass"]
    assert main([*argv, "--no-fail"]) == 0


def test_cli_unknown_paper(toy_root, capsys):
    assert main(["claims", "nosuchpaper", "--profile", "smoke"]) == 2
    assert "unknown paper 'nosuchpaper'" in capsys.readouterr().err


def test_values_are_shown_exactly_enough_to_check_the_band_by_eye():
    # a count checked against `== 51717` was shown as 5.172e+04 ("51720")
    assert format_value(51717.0) == format_value("51717") == "51717"
    assert format_value(0.9499) == "0.9499" and format_value(-1.6262459754943848) == "-1.62625"
    assert format_value("True") == "True" and format_value(None) == "—"


CLAIM = """  - id: {id}
    statement: A claim.
    source: Table 1
    metric: {metric}
    band: {band}
{extra}    justification: A band from the measured seed spread.
    profiles: [smoke]
"""


def one_claim(path, band="{min: 0.5}", extra="", metric="a", checks=""):
    path.write_text("claims:\n" + CLAIM.format(id="c", metric=metric, band=band, extra=extra))
    if checks:
        path.write_text(path.read_text() + "checks:\n" + checks)
    return path


def test_a_claim_must_name_its_null(tmp_path):
    with pytest.raises(ConfigError, match=r"claims\.0.*'null_model' is a required property"):
        load_claims(path=one_claim(tmp_path / "claims.yaml"))
    bad = "    null_model: {value: 0.1, metric: b, source: chance}\n"
    with pytest.raises(ConfigError, match="null_model"):
        load_claims(path=one_claim(tmp_path / "claims.yaml", extra=bad))


@pytest.mark.parametrize(
    ("band", "null"),
    [("{min: 0.5}", "0.7"), ("{target: 0.25, abs_tol: 0.3}", "0.0"), ("{equals: true}", "true")],
)
def test_claims_rejects_a_band_containing_its_own_null(tmp_path, band, null, capsys):
    extra = f"    null_model: {{value: {null}, source: untrained model}}\n"
    path = one_claim(tmp_path / "claims.yaml", band=band, extra=extra)
    with pytest.raises(ConfigError, match=r"claim 'c'.*contains its own null .*untrained model"):
        load_claims(path=path)


def test_cli_claims_rejects_a_band_containing_its_null(toy_root, tmp_path, capsys):
    path = toy_root / "papers" / "toy" / "claims.yaml"
    path.write_text(path.read_text().replace("value: 3.0", "value: 1.5"))
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"mean": 0.1, "draws_ok": True}))
    assert main(["claims", "toy", "--profile", "smoke", "--metrics", str(metrics)]) == 2
    assert "contains its own null 1.5" in capsys.readouterr().err


def test_cli_claims_rejects_a_gate_on_a_metric_never_computed(toy_root, tmp_path, capsys):
    path = toy_root / "papers" / "toy" / "claims.yaml"
    gate = "    needs_healthy: [mean_llc_healthy]\n    justification: With 10"
    path.write_text(path.read_text().replace("    justification: With 10", gate))
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"mean": 0.1, "draws_ok": True}))
    argv = ["claims", "toy", "--profile", "smoke", "--metrics", str(metrics), "--no-fail"]
    assert main(argv) == 2
    assert "'mean_llc_healthy', which metrics.json does not have" in capsys.readouterr().err
    metrics.write_text(json.dumps({"mean": 0.1, "draws_ok": True, "mean_llc_healthy": False}))
    assert main(argv) == 0
    assert "LLC estimates not converged: mean_llc_healthy=False" in capsys.readouterr().out


def test_null_metric_inside_band_fails_at_check_time(tmp_path):
    extra = "    null_model: {metric: a_trivial, source: rank-count predictor}\n"
    claims = load_claims(path=one_claim(tmp_path / "claims.yaml", extra=extra))
    good = check_claims(claims, {"a": 0.9, "a_trivial": 0.2}, "smoke").iloc[0]
    assert (good["status"], good["reason"], good["null"]) == ("pass", "", 0.2)
    bad = check_claims(claims, {"a": 0.9, "a_trivial": 0.6}, "smoke").iloc[0]
    assert bad["status"] == "fail"
    assert bad["reason"] == "null inside band: rank-count predictor gives 0.6"
    missing = check_claims(claims, {"a": 0.9}, "smoke").iloc[0]
    assert (missing["status"], missing["reason"]) == ("fail", "null metric 'a_trivial' missing")


def test_health_gate_fails_whatever_the_number(tmp_path):
    extra = (
        "    null_model: {value: 0.0, source: untrained model}\n"
        "    needs_healthy: [x_llc_healthy, y_llc_healthy]\n"
    )
    claims = load_claims(path=one_claim(tmp_path / "claims.yaml", extra=extra))
    healthy = {"a": 0.9, "x_llc_healthy": True, "y_llc_healthy": True}
    assert check_claims(claims, healthy, "smoke")["status"].tolist() == ["pass"]
    # the reason names each unhealthy estimate and why (the reasons recorded beside it)
    sick = {
        **healthy,
        "y_llc_healthy": False,
        "y_llc_health_reasons": "1 of 3 unhealthy; worst (seed 2): R-hat 1.3 > 1.1",
        "x_llc_healthy": None,
    }
    row = check_claims(claims, sick, "smoke").iloc[0]
    assert row["status"] == "fail"
    assert row["reason"] == (
        "LLC estimates not converged: x_llc_healthy=missing, "
        "y_llc_healthy=False (1 of 3 unhealthy; worst (seed 2): R-hat 1.3 > 1.1)"
    )


def test_training_convergence_gate_reads_as_such(tmp_path):
    extra = (
        "    null_model: {value: 0.0, source: untrained model}\n"
        "    needs_healthy: [x_llc_healthy, runs_converged]\n"
    )
    claims = load_claims(path=one_claim(tmp_path / "claims.yaml", extra=extra))
    metrics = {"a": 0.9, "x_llc_healthy": False, "runs_converged": False}
    row = check_claims(claims, metrics, "smoke").iloc[0]
    assert row["reason"] == (
        "LLC estimates not converged: x_llc_healthy=False; "
        "training runs not converged: runs_converged=False"
    )
    metrics.update(x_llc_healthy=True, runs_converged=True)
    assert check_claims(claims, metrics, "smoke").iloc[0]["status"] == "pass"


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"a": 0.9, "x_llc_healthy": True}, "'y_llc_healthy', which metrics.json does not have"),
        ({"a": 0.9, "x_llc_healthy": True, "y_llc_healthy": 1}, "not a boolean"),
    ],
)
def test_a_gate_cannot_be_vacuous(tmp_path, metrics, message):
    """A gate on a metric never computed (a typo) or not a verdict is a config error."""
    extra = (
        "    null_model: {value: 0.0, source: untrained model}\n"
        "    needs_healthy: [x_llc_healthy, y_llc_healthy]\n"
    )
    claims = load_claims(path=one_claim(tmp_path / "claims.yaml", extra=extra))
    with pytest.raises(ConfigError, match=message):
        check_claims(claims, metrics, "smoke")
    # an entry of another profile is not checked against this profile's metrics
    assert check_claims(claims, metrics, "paper").empty


def test_health_metrics_of_a_group_of_estimates():
    from sltrepro.health import health_metrics

    def row(llc, healthy, reasons="", rhat=1.0, exact=True):
        return {
            "llc_mean": llc,
            "healthy": healthy,
            "health_reasons": reasons,
            "rhat": rhat,
            "ess_bulk": 200.0 * llc,
            "mala_acceptance": 0.9,
            "mala_exact": exact,
        }

    good = health_metrics([row(1.0, True), row(2.0, True)], "w1_")
    assert good["w1_llc_healthy"] is True and good["w1_llc_health_reasons"] == ""
    assert (good["w1_llc_lowest"], good["w1_llc_highest"]) == (1.0, 2.0)
    assert good["w1_llc_ess_bulk"] == 200.0 and good["w1_llc_mala_exact"] is True
    assert "w1_llc_ess_tail" not in good  # a field the rows lack is left out
    rows = [
        row(1.0, True),
        row(2.0, False, "R-hat 1.2 > 1.1", 1.2),
        row(3.0, False, "R-hat 1.5 > 1.1; bulk ESS 9 < 100", 1.5, exact=False),
    ]
    bad = health_metrics(rows, "", labels=["step 0", "step 1", "step 2"])
    assert bad["llc_healthy"] is False and bad["llc_unhealthy"] == 2
    assert bad["llc_health_reasons"] == (
        "2 of 3 unhealthy; worst (step 2): R-hat 1.5 > 1.1; bulk ESS 9 < 100"
    )
    assert bad["llc_rhat"] == 1.5 and bad["llc_mala_exact"] is False


def test_reasons_for_missing_and_outside(tmp_path):
    extra = "    null_model: {value: 0.0, source: untrained model}\n"
    claims = load_claims(path=one_claim(tmp_path / "claims.yaml", extra=extra))
    assert check_claims(claims, {}, "smoke")["reason"].tolist() == ["metric 'a' missing"]
    assert check_claims(claims, {"a": 0.25}, "smoke")["reason"].tolist() == ["0.25 outside >= 0.5"]


CHECK = """  - id: k
    statement: Our parameter count.
    source: App. B
    metric: n
    band: {equals: 7}
    justification: An exact count of our own model.
    profiles: [smoke]
"""


def test_checks_need_no_null_and_are_counted_apart(tmp_path):
    from sltrepro.claims import count_passing

    extra = "    null_model: {value: 0.0, source: untrained model}\n"
    claims = load_claims(path=one_claim(tmp_path / "claims.yaml", extra=extra, checks=CHECK))
    assert [(c["id"], c["kind"]) for c in claims] == [("c", "claim"), ("k", "check")]
    table = check_claims(claims, {"a": 0.9, "n": 8}, "smoke")
    assert table["kind"].tolist() == ["claim", "check"]
    assert table.columns.tolist()[:1] == ["claim"]
    assert count_passing(table) == "1 of 1 claims pass; 0 of 1 checks pass"
    with pytest.raises(ConfigError, match="duplicated"):
        load_claims(
            path=one_claim(
                tmp_path / "dup.yaml", extra=extra, checks=CHECK.replace("id: k", "id: c")
            )
        )


def test_report_and_summary_show_checks_apart(toy_root, tmp_path):
    from sltrepro import report

    extra = "    null_model: {value: 0.0, source: untrained model}\n"
    claims = load_claims(path=one_claim(tmp_path / "claims.yaml", extra=extra, checks=CHECK))
    csv = tmp_path / "toy" / "claims.csv"
    csv.parent.mkdir()
    check_claims(claims, {"n": 7}, "smoke").to_csv(csv, index=False)
    text = report.paper_report("toy", "smoke", csv, [], tmp_path / "report.md")
    assert "0 of 1 claims pass; 1 of 1 checks pass" in text
    claims_part, checks_part = text.split("## Harness checks")
    assert "metric 'a' missing" in claims_part and "| k " not in claims_part
    assert "| k " in checks_part
    summary = report.summary("smoke", {"toy": csv}, tmp_path / "summary.md")
    assert "0 of 1 claims pass; 1 of 1 checks pass across 1 papers" in summary


def test_html_report_parts_show_failures_and_checks_apart(toy_root, tmp_path):
    """The claims page and the front-page section (reStructuredText, which docutils must
    parse without a message: an error there would stop `snakemake --report`)."""
    import io

    from docutils.core import publish_parts

    from sltrepro import report

    extra = "    null_model: {value: 0.0, source: untrained model}\n"
    claims = load_claims(path=one_claim(tmp_path / "claims.yaml", extra=extra, checks=CHECK))
    csv = tmp_path / "toy" / "claims.csv"
    csv.parent.mkdir()
    check_claims(claims, {"n": 7}, "smoke").to_csv(csv, index=False)
    page = report.claims_html("toy", "smoke", csv, tmp_path / "claims.html")
    claims_part, checks_part = page.split("<h2>Harness checks</h2>")
    assert '<tr class="fail">' in claims_part and "metric &#x27;a&#x27; missing" in claims_part
    assert '<tr class="pass">' in checks_part and '<tr class="pass">' not in claims_part
    rst = report.front_page_rst("toy", "smoke", csv, tmp_path / "claims.rst")
    warnings = io.StringIO()
    body = publish_parts(rst, writer="html", settings_overrides={"warning_stream": warnings})[
        "body"
    ]
    assert warnings.getvalue() == ""
    assert "0 of 1 claims pass; 1 of 1 checks pass" in body
    front_claims, front_checks = body.split("Harness checks (of our code, not of the paper)")
    assert "✘ FAIL" in front_claims and "✔ pass" in front_checks


def test_health_metrics_read_prefixed_rows():
    """A table of summary_row(prefix="llc_") columns, as the LM half of icl_landscape has."""
    from sltrepro.health import health_metrics

    table = pd.DataFrame(
        {
            "llc": [1.0, 2.0],
            "llc_mean": [1.0, 2.0],
            "llc_rhat": [1.0, 1.05],
            "llc_healthy": [True, True],
            "llc_health_reasons": ["", ""],
            "llc_mcse": [0.1, 0.3],
        }
    )
    out = health_metrics(table, "lm_", row_prefix="llc_")
    assert out["lm_llc_healthy"] is True and out["lm_llc_rhat"] == 1.05
    assert out["lm_llc_mcse"] == 0.3 and out["lm_llc_highest"] == 2.0


def _two_groups() -> dict:
    """The health metrics of a healthy group (exact MALA) and an unhealthy one (proxy)."""
    from sltrepro.health import health_metrics

    def row(llc, healthy, reasons="", exact=True):
        return {
            "llc_mean": llc,
            "healthy": healthy,
            "health_reasons": reasons,
            "rhat": 1.01,
            "ess_bulk": 400.0,
            "ess_tail": 300.0,
            "llc_mcse": 0.02,
            "loss_budget": 40.0,
            "mala_acceptance": 0.93,
            "mala_exact": exact,
        }

    good = health_metrics([row(0.5, True), row(0.52, True)], "w1_")
    bad = [row(3.1, True, exact=False), row(3.4, False, "R-hat 1.3 > 1.1: add num_burnin", False)]
    return {"a": 0.9, **good, **health_metrics(bad, "w2_", labels=["seed 0", "seed 1"])}


def test_diagnostics_table_shows_which_llc_numbers_to_trust():
    from sltrepro.health import diagnostics_table

    table = diagnostics_table(_two_groups(), {"w2_llc_healthy": ["claim_x", "claim_y"]})
    assert table["estimates"].tolist() == ["w1_llc", "w2_llc"]
    good, bad = table.to_dict("records")
    assert good["healthy"] == "yes" and good["LLC"] == "0.5 … 0.52" and good["reasons"] == ""
    assert good["MALA acceptance"] == "0.93 (exact)" and good["R-hat"] == "1.01"
    assert bad["healthy"] == "NO" and bad["MALA acceptance"] == "0.93 (minibatch proxy)"
    assert bad["reasons"] == "1 of 2 unhealthy; worst (seed 1): R-hat 1.3 > 1.1: add num_burnin"
    assert bad["gates"] == "claim_x, claim_y" and bad["nbeta*eps*T"] == "40"
    # a health boolean a claim names outside the <stem>llc_healthy pattern gets a row too
    other = diagnostics_table({"sgd_all_ok": False}, {"sgd_all_ok": ["z"]})
    assert other[["estimates", "healthy", "LLC"]].values.tolist() == [["sgd_all_ok", "NO", "—"]]
    assert diagnostics_table({"a": 1.0}).empty


def test_report_parts_carry_the_llc_diagnostics(toy_root, tmp_path):
    """report.md, the claims page and the front page (which docutils parses cleanly) show
    the diagnostics table; without LLC estimates there is no such section."""
    import io

    from docutils.core import publish_parts

    from sltrepro import report

    claims = load_claims("toy")
    csv = tmp_path / "claims.csv"
    metrics = {"mean": 0.1, "draws_ok": True, **_two_groups()}
    check_claims(claims, metrics, "smoke").to_csv(csv, index=False)
    text = report.paper_report("toy", "smoke", csv, [], tmp_path / "report.md", metrics)
    diagnostics = text.split("## LLC diagnostics")[1].split("## Figures")[0]
    assert "| `w1_llc` " in diagnostics and "| `w2_llc` " in diagnostics
    assert "worst (seed 1): R-hat 1.3 > 1.1" in diagnostics and "minibatch proxy" in diagnostics
    assert "## LLC diagnostics" not in report.paper_report("toy", "smoke", csv, [], tmp_path / "r")
    page = report.claims_html("toy", "smoke", csv, tmp_path / "claims.html", metrics)
    llc_part = page.split("<h2>LLC diagnostics</h2>")[1]
    assert '<tr class="pass"><td><code>w1_llc</code>' in llc_part
    assert '<tr class="fail"><td><code>w2_llc</code>' in llc_part
    rst = report.front_page_rst("toy", "smoke", csv, tmp_path / "claims.rst", metrics)
    warnings = io.StringIO()
    settings = {"warning_stream": warnings}
    body = publish_parts(rst, writer="html", settings_overrides=settings)["body"]
    assert warnings.getvalue() == ""
    front = body.split("LLC diagnostics")[1]
    assert "w2_llc" in front and "NO" in front and "0.93 (exact)" in front


def test_health_reasons_of_a_single_estimate_name_it():
    from sltrepro.health import health_metrics

    row = {"llc_mean": 9.1, "healthy": False, "health_reasons": "MCSE 1.7 > 0.1 x |LLC| (9.1)"}
    out = health_metrics([row], "final_", labels=["step 15000"])
    assert out["final_llc_health_reasons"] == "step 15000: MCSE 1.7 > 0.1 x |LLC| (9.1)"
