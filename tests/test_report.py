import io
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy import stats

from modalab.cli.main import main
from modalab.experiments.collect import (
    RESULT_COLUMNS,
    ResultsNotFoundError,
    collect_results,
    rows_from_run_dir,
)
from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.plots import robustness_curves
from modalab.experiments.progress import progress_bar, track
from modalab.experiments.report import (
    ReportConfig,
    build_report,
    compare_results,
    embedding_features,
    summarize,
    wide_table,
)

TINY = [
    "data.n_samples=400",
    "trainer.max_epochs=2",
    "trainer.batch_size=64",
    "eval.l2_grid=[0.01]",
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 methods × 2 seeds of tiny `modalab run`s, made once per test session."""
    root = tmp_path_factory.mktemp("sweep")
    args = ["run", "--quiet", "method=clip,supervised", "seed=0,1", *TINY, f"output_dir={root}"]
    assert main(args) == 0
    return root


def _synthetic_rows(shift: float = 0.0) -> pd.DataFrame:
    """A study with scenarios and severities, counterfactual metrics and 3 seeds."""
    rng = np.random.default_rng(0)
    rows = []
    for method, slope in (("supervised", -0.5), ("robust", -0.1)):
        for seed in range(3):
            for scenario in ("missing", "noisy"):
                for severity in (0.0, 0.5, 1.0):
                    run_id = f"{method}-{scenario}-{severity:g}-s{seed}"
                    value = 0.9 + slope * severity + rng.normal(0, 0.02) + shift
                    rows.append(
                        (
                            run_id,
                            method,
                            scenario,
                            severity,
                            seed,
                            "linear_probe_acc",
                            "fused",
                            "labels=1",
                            value,
                        )
                    )
            run_id = f"{method}-clean-s{seed}"
            for modality, base in (("image", 0.3), ("text", 0.5), ("audio", 0.1)):
                rows.append(
                    (
                        run_id,
                        method,
                        "",
                        math.nan,
                        seed,
                        "shapley",
                        modality,
                        "",
                        base + rng.normal(0, 0.01),
                    )
                )
            for direction in ("image->text", "text->image"):
                rows.append(
                    (
                        run_id,
                        method,
                        "",
                        math.nan,
                        seed,
                        "swap_acc_drop",
                        direction,
                        "",
                        0.2 + rng.normal(0, 0.01),
                    )
                )
            rows.append(
                (
                    run_id,
                    method,
                    "",
                    math.nan,
                    seed,
                    "linear_probe_acc",
                    "fused",
                    "labels=1",
                    0.9 + shift + rng.normal(0, 0.01),
                )
            )
    frame = pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "method",
            "scenario",
            "severity",
            "seed",
            "metric",
            "modality",
            "condition",
            "value",
        ],
    )
    frame["config_hash"] = frame["method"].map(lambda m: f"hash-{m}")
    frame["study"] = "synthetic"
    frame["severity_key"] = frame["scenario"].map(lambda s: f"scenario.{s}.rate" if s else "")
    frame["data"] = "shapes"
    frame["git_revision"] = "abc123"
    frame["versions"] = json.dumps({"modalab": "0.1.0"})
    frame["timestamp"] = "2026-01-01T00:00:00+00:00"
    return frame[list(RESULT_COLUMNS)]


def _write_store(frame: pd.DataFrame, store: Path) -> Path:
    (store / "rows").mkdir(parents=True)
    for run_id, rows in frame.groupby("run_id"):
        rows.to_parquet(store / "rows" / f"{run_id}.parquet", index=False)
    return store


# --------------------------------------------------------------------------- statistics


def test_summarize_welch_and_paired_against_hand_computed() -> None:
    base = [0.50, 0.55, 0.52, 0.58]
    other = [0.60, 0.66, 0.59, 0.70]
    rows = pd.DataFrame(
        {
            "data": "d",
            "scenario": "",
            "severity": math.nan,
            "metric": "acc",
            "modality": "m",
            "condition": "",
            "method": ["base"] * 4 + ["new"] * 4,
            "seed": [0, 1, 2, 3] * 2,
            "value": base + other,
        }
    )
    summary = summarize(rows, baseline="base", test="welch", correction="none").set_index("method")
    a, b = np.array(base), np.array(other)
    # Welch: t = (mean_b - mean_a) / sqrt(va/na + vb/nb), Welch–Satterthwaite degrees of freedom
    va, vb = a.var(ddof=1) / 4, b.var(ddof=1) / 4
    t = (b.mean() - a.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 3)
    p_welch = 2 * stats.t.sf(abs(t), dof)
    assert summary.loc["new", "p_value"] == pytest.approx(p_welch, rel=1e-9)
    assert summary.loc["new", "mean"] == pytest.approx(b.mean())
    assert summary.loc["new", "std"] == pytest.approx(b.std(ddof=1))
    assert summary.loc["new", "n"] == 4
    expected_marker = "*" * sum(p_welch < x for x in (0.05, 0.01, 0.001))
    assert expected_marker and summary.loc["new", "marker"] == expected_marker
    assert math.isnan(summary.loc["base", "p_value"]) and summary.loc["base", "marker"] == ""
    # paired over seeds: t = mean(d) / (sd(d) / sqrt(n)), n - 1 degrees of freedom
    d = b - a
    t_paired = d.mean() / (d.std(ddof=1) / 2)
    p_paired = 2 * stats.t.sf(abs(t_paired), 3)
    paired = summarize(rows, baseline="base", test="paired").set_index("method")
    assert paired.loc["new", "p_value"] == pytest.approx(p_paired, rel=1e-9)
    # The default: paired over the shared seeds; one comparison, so Holm leaves it alone.
    default = summarize(rows, baseline="base").set_index("method")
    assert default.loc["new", "p_value"] == pytest.approx(p_paired, rel=1e-9)
    assert default.loc["new", "p_adjusted"] == pytest.approx(p_paired, rel=1e-9)
    with pytest.raises(ValueError, match="test='bayes' is unknown"):
        summarize(rows, test="bayes")


def _quantity_rows(
    methods: list[str], seeds: list[int], values: object, modality: str = "", metric: str = "acc"
) -> pd.DataFrame:
    """Result rows of one quantity (no scenario) for the given methods, seeds and values."""
    return pd.DataFrame(
        {
            "data": "d",
            "scenario": "",
            "severity": math.nan,
            "metric": metric,
            "modality": modality,
            "condition": "",
            "method": methods,
            "seed": seeds,
            "value": values,
        }
    )


def test_single_seed_gets_no_marker() -> None:
    rows = _quantity_rows(["base", "new"], [0, 0], [0.1, 0.9])
    summary = summarize(rows, baseline="base").set_index("method")
    assert math.isnan(summary.loc["new", "p_value"]) and summary.loc["new", "marker"] == ""
    assert math.isnan(summary.loc["new", "std"])


# --------------------------------------------------------------------------- store, robustness


def test_store_report_has_robustness_and_counterfactual_sections(tmp_path: Path) -> None:
    frame = _synthetic_rows()
    store = _write_store(frame, tmp_path / "store")
    collected = collect_results(store)
    assert list(collected.table.columns) == list(RESULT_COLUMNS)
    assert len(collected.table) == len(frame)
    assert collected.table["value"].sum() == pytest.approx(frame["value"].sum())

    files = build_report(
        store, tmp_path / "out", ReportConfig(baseline="supervised", formats=("png",))
    )
    md = files.markdown.read_text()
    assert "## Robustness" in md and "## Counterfactual analysis" in md
    names = {p.name for p in files.figures}
    assert "robustness_linear-probe-acc_fused_labels-1.png" in names
    assert {"counterfactual_shapley.png", "counterfactual_swap-acc-drop.png"} <= names
    assert any("No learning curves" in n for n in files.notes)
    # the robustness table row of `robust` at missing/1.0 holds mean ± std of its 3 seeds
    sel = frame[
        (frame.method == "robust") & (frame.scenario == "missing") & (frame.severity == 1.0)
    ]["value"].to_numpy()
    cell = f"{sel.mean():.3f} ± {sel.std(ddof=1):.3f}"
    line = next(x for x in md.splitlines() if x.startswith("| missing | 1 | linear_probe_acc |"))
    assert cell in line
    # robust degrades much less than supervised: at severity 1 the difference is significant
    assert re.search(re.escape(cell) + r" \*+", line)


def test_robustness_curves_plot_the_seed_means() -> None:
    frame = _synthetic_rows()
    summary = summarize(frame)
    part = summary[(summary.scenario != "") & (summary.metric == "linear_probe_acc")]
    figure = robustness_curves(part, "acc")
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["missing", "noisy"]
    for ax, scenario in zip(figure.axes, titles):
        for line in ax.lines:
            method = line.get_label()
            expected = [
                np.mean(
                    [
                        r.value
                        for r in frame.itertuples()
                        if r.method == method and r.scenario == scenario and r.severity == s
                    ]
                )
                for s in (0.0, 0.5, 1.0)
            ]
            np.testing.assert_allclose(line.get_xdata(), [0.0, 0.5, 1.0])
            np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)


def test_robustness_curves_legend_names_a_method_missing_from_the_last_panel() -> None:
    summary = pd.DataFrame(
        {
            "scenario": ["a", "a", "a", "a", "b", "b"],
            "severity": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
            "method": ["clip", "clip", "image_only", "image_only", "clip", "clip"],
            "mean": [0.9, 0.8, 0.7, 0.3, 0.9, 0.85],
            "std": [0.01] * 6,
        }
    )
    figure = robustness_curves(summary, "acc")
    legend = figure.axes[-1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["clip", "image_only"]


def test_store_with_missing_columns_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rows").mkdir()
    pd.DataFrame({"run_id": ["x"], "value": [1.0]}).to_parquet(tmp_path / "rows" / "x.parquet")
    with pytest.raises(ValueError, match="lacks the results columns"):
        collect_results(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsNotFoundError, match="holds no results"):
        collect_results(tmp_path / "empty")
    with pytest.raises(ResultsNotFoundError, match="does not exist"):
        collect_results(tmp_path / "nothing")


def test_compare_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write_store(_synthetic_rows(), tmp_path / "a")
    b = _write_store(_synthetic_rows(shift=0.1), tmp_path / "b")
    table = compare_results([a, b], labels=["before", "after"], metrics=["shapley"])
    assert list(table.columns[-4:]) == [
        "before/robust",
        "before/supervised",
        "after/robust",
        "after/supervised",
    ]
    rows_a = _synthetic_rows()
    text = rows_a[
        (rows_a.method == "robust") & (rows_a.metric == "shapley") & (rows_a.modality == "text")
    ]["value"].to_numpy()
    row = table[table["modality"] == "text"].iloc[0]
    assert row["before/robust"] == f"{text.mean():.3f} ± {text.std(ddof=1):.3f} (3)"
    out = tmp_path / "cmp.md"
    assert main(["compare", str(a), str(b), "--metric", "linear_probe_acc", "-o", str(out)]) == 0
    header = out.read_text().splitlines()[0]
    assert header == (
        "| scenario | severity | metric | modality | condition "
        "| a/robust | a/supervised | b/robust | b/supervised |"
    )
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "does not exist" in " ".join(capsys.readouterr().out.split())  # rich wraps lines


# --------------------------------------------------------------------------- run directories


@pytest.mark.slow
def test_run_dirs_become_store_rows(tiny_sweep: Path) -> None:
    collected = collect_results(tiny_sweep)
    table = collected.table
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert sorted(table.drop_duplicates("run_id")[["method", "seed"]].itertuples(index=False)) == [
        ("clip", 0),
        ("clip", 1),
        ("supervised", 0),
        ("supervised", 1),
    ]
    for run_id, run_dir in collected.run_dirs.items():
        csv = pd.read_csv(run_dir / "metrics.csv", keep_default_na=False)
        rows = table[table.run_id == run_id]
        np.testing.assert_allclose(rows["value"].to_numpy(), csv["value"].to_numpy())
        assert list(rows["metric"]) == list(csv["metric"])
        assert list(rows["condition"]) == list(csv["condition"])
        assert (rows["scenario"] == "none").all() and rows["severity"].isna().all()
        assert json.loads(rows["versions"].iloc[0])["modalab"] == "0.1.0"
    hashes = table.drop_duplicates("run_id").groupby("method")["config_hash"].nunique()
    assert (hashes == 1).all()  # the seeds of one config share the hash
    assert table.groupby("method")["config_hash"].first().nunique() == 2
    one = next(iter(collected.run_dirs.values()))
    assert rows_from_run_dir(one)["run_id"].unique().tolist() == [one.name]
    single = collect_results(one)  # a single run directory is a valid PATH too
    assert list(single.run_dirs) == [one.name] and single.table["run_id"].nunique() == 1
    (one.parent / "unfinished").mkdir()
    (one.parent / "unfinished" / "config.yaml").write_text("seed: 0\n")
    try:
        assert [p.name for p in collect_results(tiny_sweep).unfinished] == ["unfinished"]
    finally:
        shutil.rmtree(one.parent / "unfinished")


@pytest.mark.slow
def test_embedding_features_of_a_run(tiny_sweep: Path) -> None:
    run_dir = next(p for p in collect_results(tiny_sweep).run_dirs.values() if "clip" in p.name)
    sample = embedding_features(run_dir, n_samples=40)
    assert sample.embeddings.shape == (120, 64)  # 40 samples × 3 modalities, proj_dim=64
    assert sample.modalities[:40] == ["image"] * 40 and sample.space == "joint"
    from modalab.experiments.build import build_data
    from modalab.experiments.io import load_yaml

    splits = build_data(load_yaml(run_dir / "config.yaml")["data"])
    np.testing.assert_array_equal(sample.labels[:40], splits.test.clean_label[:40].numpy())


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var d = document.createElement('div');
  d.id = 'img-check';
  d.textContent = 'loaded=' + ok + ' total=' + imgs.length +
    ' tables=' + document.querySelectorAll('table').length;
  document.body.appendChild(d);
});
</script>"""


def _render(chromium: str, page: Path, profile: Path) -> str:
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r'id="img-check">loaded=(\d+) total=(\d+) tables=(\d+)<', result.stdout)
    assert match, f"the check script did not run: {result.stdout[-500:]}"
    return match.group(0)


@pytest.mark.slow
def test_html_report_of_a_sweep_renders_in_chromium(tiny_sweep: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium binary found (.ci/run installs Debian's chromium)")
    files = build_report(
        tiny_sweep, tmp_path / "report", ReportConfig(embedding_samples=60, formats=("png", "pdf"))
    )
    page = files.html.read_text()
    # self-contained: every image is a data URI; no external script, style sheet or image
    assert not re.search(r"<(script|link)\b", page)
    assert all(s.startswith("data:image/png;base64,") for s in re.findall(r'src="([^"]+)"', page))
    expected = {
        "learning_curves",
        "bars_linear-probe-acc_labels-1",
        "matrix_recall-1",
        "embedding_clip",
        "embedding_supervised",
    }
    assert {p.stem for p in files.figures} == expected
    for path in files.figures:
        head = path.read_bytes()[:8]
        assert head.startswith(b"%PDF" if path.suffix == ".pdf" else b"\x89PNG")
    n_images = page.count("<img ")
    assert n_images == len(expected)

    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"))
    found = re.findall(r"\d+", _render(chromium, checked, tmp_path / "profile"))
    loaded, total, tables = map(int, found)
    assert total == n_images and loaded == total
    assert tables == page.count("<table")
    assert tables >= 5  # overview, varying config, representation, retrieval, modality gap
    # control: a broken image is detected by the same check
    broken = tmp_path / "broken.html"
    broken.write_text(
        page.replace("</body>", '<img src="data:image/png;base64,AAAA">' + CHECK_SCRIPT + "</body>")
    )
    loaded_b, total_b, _ = map(
        int, re.findall(r"\d+", _render(chromium, broken, tmp_path / "profile2"))
    )
    assert (loaded_b, total_b) == (n_images, n_images + 1)

    # the table cells hold the seed statistics computed from the runs' metrics.csv
    csvs = pd.concat(
        pd.read_csv(p, keep_default_na=False) for p in tiny_sweep.glob("*/metrics.csv")
    )
    sel = csvs[
        (csvs.method == "clip") & (csvs.metric == "linear_probe_acc") & (csvs.modality == "fused")
    ]["value"].to_numpy()
    assert len(sel) == 2
    assert f"{sel.mean():.3f} ± {sel.std(ddof=1):.3f}" in page
    assert "Welch" in page and "supervised" in page


@pytest.mark.slow
def test_report_cli(tiny_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert (
        main(
            [
                "report",
                str(tiny_sweep),
                "-o",
                str(out),
                "--no-embedding",
                "--formats",
                "png",
                "--quiet",
                "--baseline",
                "clip",
            ]
        )
        == 0
    )
    md = (out / "report.md").read_text()
    assert "against the baseline `clip`" in md and "Embedding maps not drawn" in md
    assert not list((out / "figures").glob("*.pdf"))
    assert main(["report", str(tmp_path / "empty"), "--quiet"]) == 2
    assert (
        main(
            [
                "report",
                str(tiny_sweep),
                "-o",
                str(out),
                "--formats",
                "gif",
                "--quiet",
                "--no-embedding",
            ]
        )
        == 2
    )
    assert "Unsupported figure format 'gif'" in capsys.readouterr().out


# --------------------------------------------------------------------------- loggers, progress


def test_loggers_config_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modalab.experiments import loggers

    cfg = compose_config(["loggers=[csv,tensorboard,mlflow]", "mlflow.experiment_name=x"])
    assert list(cfg.loggers) == ["csv", "tensorboard", "mlflow"]
    with pytest.raises(ConfigError, match="Unknown logger 'wandb'"):
        loggers.build_loggers(["csv", "wandb"], tmp_path)
    with pytest.raises(ConfigError, match="names a logger twice"):
        loggers.build_loggers(["csv", "csv"], tmp_path)
    monkeypatch.setattr(loggers, "_mlflow_installed", lambda: False)
    with pytest.raises(ConfigError, match=r'pip install "modalab\[mlflow\]"'):
        loggers.build_loggers(["mlflow"], tmp_path / "run")


def test_mlflow_logger_writes_a_local_file_store(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the optional [mlflow] extra is not installed")
    from modalab.experiments.loggers import build_loggers

    (logger,) = build_loggers(["mlflow"], tmp_path / "run-1", params={"method.name": "clip"})
    logger.log_metrics({"train/loss": 1.25}, step=3)
    logger.finalize("success")
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    run = client.get_run(logger.run_id)
    assert run.info.run_name == "run-1"
    assert run.data.params == {"method.name": "clip"}
    assert run.data.metrics == {"train/loss": 1.25}


def test_progress_bar_and_quiet_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=False)
    with progress_bar(3, "sweep", quiet=False, console=console) as bar:
        for _ in range(3):
            bar.advance()
    assert "sweep" in buffer.getvalue() and "3/3" in buffer.getvalue()
    quiet = io.StringIO()
    monkeypatch.setenv("MODALAB_QUIET", "1")
    assert list(track(range(4), "x", console=Console(file=quiet))) == [0, 1, 2, 3]
    assert quiet.getvalue() == ""


@pytest.mark.slow
def test_python_example_of_the_docs_runs(tiny_sweep: Path, tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "docs" / "reporting.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    code = code.replace('"runs/cmp/report"', repr(str(tmp_path / "r"))).replace(
        '"runs/cmp"', repr(str(tiny_sweep))
    )
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["files"].html.exists()
    summary = namespace["summary"]
    assert set(summary["method"]) == {"clip", "supervised"} and (summary["n"] == 2).all()


@pytest.mark.slow
def test_run_with_mlflow_logger_matches_csv_log(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the optional [mlflow] extra is not installed")
    args = ["run", "--quiet", "method=supervised", *TINY, "data.n_samples=300"]
    assert main([*args, f"output_dir={tmp_path}", "run_name=r", "loggers=[csv,mlflow]"]) == 0
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("modalab").experiment_id])
    assert run.info.run_name == "r" and run.data.params["method.name"] == "supervised"
    logged = [m.value for m in client.get_metric_history(run.info.run_id, "val/loss")]
    csv = pd.read_csv(tmp_path / "r" / "logs" / "metrics.csv")["val/loss"].dropna()
    np.testing.assert_allclose(sorted(logged), sorted(csv), rtol=1e-6)
    assert not (tmp_path / "r" / "tensorboard").exists()  # only the loggers asked for


@pytest.mark.slow
def test_unloadable_run_leaves_a_note_not_a_crash(tiny_sweep: Path, tmp_path: Path) -> None:
    source = next(p for p in collect_results(tiny_sweep).run_dirs.values() if "clip" in p.name)
    run_dir = tmp_path / "runs" / source.name
    shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    config = (run_dir / "config.yaml").read_text().replace("name: shapes", "name: nosuchdata")
    (run_dir / "config.yaml").write_text(config)
    files = build_report(tmp_path / "runs", tmp_path / "r", ReportConfig(formats=("png",)))
    (note,) = [n for n in files.notes if n.startswith("No embedding map for clip")]
    assert "nosuchdata" in note
    assert "## Embedding maps" in files.markdown.read_text()
    assert "Modality gap" not in files.markdown.read_text()


def test_summarize_corrects_within_each_report_table_as_statsmodels() -> None:
    """Holm / BH over the comparisons of one table; retrieval is a separate family."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(7)
    seeds = list(range(5))
    frames = []
    quantities = [("acc", m) for m in ("image", "audio", "fused")] + [("R@1", "image->audio")]
    for metric, modality in quantities:
        base = rng.normal(0.5, 0.05, 5)
        for method, shift in (("base", 0.0), ("a", 0.04), ("b", 0.08)):
            values = base + shift + rng.normal(0, 0.03, 5)
            frames.append(_quantity_rows([method] * 5, seeds, values, modality, metric))
    rows = pd.concat(frames, ignore_index=True)
    for correction, name in (("holm", "holm"), ("bh", "fdr_bh")):
        summary = summarize(rows, baseline="base", correction=correction)
        tested = summary[summary["method"] != "base"]
        for family_name, expected_tests in (
            ("representation quality", 6),
            ("cross-modal retrieval", 2),
        ):
            part = tested[tested["family"] == family_name]
            assert len(part) == expected_tests and set(part["tests"]) == {expected_tests}
            raw = []
            for _, row in part.iterrows():
                pick = (rows["metric"] == row["metric"]) & (rows["modality"] == row["modality"])
                x = rows[pick & (rows["method"] == row["method"])]["value"].to_numpy()
                y = rows[pick & (rows["method"] == "base")]["value"].to_numpy()
                raw.append(stats.ttest_rel(x, y).pvalue)
            np.testing.assert_allclose(part["p_value"], raw, rtol=1e-9)
            adjusted = multipletests(raw, method=name)[1]
            np.testing.assert_allclose(part["p_adjusted"], adjusted, rtol=1e-9)
            expected = ["*" * sum(p < a for a in (0.05, 0.01, 0.001)) for p in adjusted]
            assert part["marker"].tolist() == expected
    with pytest.raises(ValueError, match="correction='sidak' is unknown"):
        summarize(rows, correction="sidak")


def test_zero_variance_cell_is_marked_in_the_wide_table() -> None:
    rows = _quantity_rows(
        ["base"] * 3 + ["flat"] * 3, [0, 1, 2] * 2, [0.5, 0.6, 0.55, 0.276, 0.276, 0.276], "fused"
    )
    table = wide_table(summarize(rows, baseline="base"))
    # The differences to the baseline vary, so the paired test is defined (one comparison).
    p = stats.ttest_rel([0.276] * 3, [0.5, 0.6, 0.55]).pvalue
    stars = "*" * sum(p < a for a in (0.05, 0.01, 0.001))
    assert table["flat"].iloc[0] == f"0.276 ± 0.000 {stars} †".replace("  ", " ")
    assert table["base"].iloc[0] == "0.550 ± 0.050"


@pytest.mark.slow  # the fast tier is at its 3-minute budget
def test_reference_runs_appear_at_every_severity_of_their_scenario(tmp_path: Path) -> None:
    """A reference method (run once per seed without its scenario: severity NaN) is a row of
    the report's robustness table at each severity, with its own seeds' mean ± std, and never
    a row of its own at an empty severity."""
    frame = _synthetic_rows()
    reference = frame[(frame.method == "robust") & (frame.scenario == "missing")]
    reference = reference[reference.severity == 0.0].assign(
        method="control",
        severity=math.nan,
        severity_key="",
        config_hash="hash-control",
        run_id=lambda f: f["run_id"].str.replace("robust", "control"),
        value=[0.61, 0.64, 0.66],
    )
    store = _write_store(pd.concat([frame, reference], ignore_index=True), tmp_path / "store")
    files = build_report(
        store, tmp_path / "out", ReportConfig(baseline="supervised", formats=("png",))
    )
    lines = files.markdown.read_text().splitlines()
    header = next(x for x in lines if x.startswith("| scenario | severity |"))
    column = [c.strip() for c in header.split("|")].index("control")
    cell = f"{0.637:.3f} ± {np.std([0.61, 0.64, 0.66], ddof=1):.3f}"
    for severity in ("0", "0.5", "1"):
        line = next(x for x in lines if x.startswith(f"| missing | {severity} | linear_probe"))
        assert [c.strip() for c in line.split("|")][column].startswith(cell), line
    assert not any(x.startswith("| missing |  | linear_probe") for x in lines)
