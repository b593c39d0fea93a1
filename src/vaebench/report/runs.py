"""Every run and every pairwise test of the bits/dim, folded away at the foot of the page."""

import pandas as pd

from vaebench.report.html import esc, family_label, table
from vaebench.results import METRIC_NAMES, OK, Study
from vaebench.utils import finite
from vaebench.words import fmt, fmt_p, fmt_value

INTEGER_COLUMNS = (
    "latent_dim",
    "seed",
    "k",
    "n_test",
    "epochs_completed",
    "best_epoch",
    "lr_decays",
    "active_units",
    "epochs_to_95",
)
# the every-run tables, split so each fits the page: (id, what it shows, ((column, header), ...))
RUN_TABLES = (
    (
        "runs-likelihoods",
        "status and likelihoods",
        (
            ("status", "status"),
            ("note", "note"),
            ("bpd_disc", "bits/dim disc ↓"),
            ("bpd_deq", "bits/dim deq ↓"),
            ("ll_disc_nats", "LL disc, nats ↑"),
            ("ll_deq_nats", "LL deq, nats ↑"),
            ("elbo_nats", "ELBO, nats ↑"),
            ("kl_nats", "KL, nats"),
            ("ll_disc_rise_nats", "LL rise K/4→K, nats"),
            ("k", "K"),
            ("n_test", "test images"),
        ),
    ),
    (
        "runs-measures",
        "other measures",
        (
            ("recon_mse", "recon MSE ↓"),
            ("knn_acc", "kNN acc ↑"),
            ("active_units", "active units"),
            ("coverage90", "recon. coverage 90%"),
            ("epochs_to_95", "epochs to 95% ↓"),
            ("fd_samples_mean", "FD samples ↓"),
            ("fd_recon_mean", "FD recon ↓"),
            ("sharpness_mean", "sharpness"),
            ("recon_class_acc_mean", "recon class acc ↑"),
        ),
    ),
    (
        "runs-training",
        "training",
        (
            ("stop_reason", "stopped by"),
            ("epochs_completed", "epochs done"),
            ("best_epoch", "epoch kept"),
            ("lr", "learning rate"),
            ("lr_decays", "lr decays"),
            ("lr_final", "final learning rate"),
            ("drift_bpd", "drift, bits/dim"),
            ("seconds_per_epoch", "s per epoch"),
        ),
    ),
    (
        "runs-provenance",
        "cost and provenance",
        (
            ("train_seconds", "train s"),
            ("eval_seconds", "eval s"),
            ("device", "device"),
            ("git_commit", "commit"),
            ("started_at", "started"),
            ("run_dir", "run directory"),
        ),
    ),
)
# the text columns of those tables -> how many characters are shown (None: all)
TEXT_COLUMNS = {
    "note": None,
    "stop_reason": None,
    "device": None,
    "git_commit": 10,
    "started_at": None,
    "run_dir": None,
}
TEST_HEADER = [
    "metric",
    "z",
    "a",
    "b",
    "seeds a, b",
    "test images",
    "method",
    "a − b, bits/dim [95% CI]",
    "p",
    "Holm p",
    "runs of a ahead",
    "run gaps a − b",
    "significant",
    "note",
]


def number(column: str, value) -> str:
    """A cell of the every-run table: counts as integers, learning rates to 3 significant digits, bits/dim and
    MSE to 4 decimals, the rest 2."""
    if not finite(value):
        return ""
    if column in INTEGER_COLUMNS and float(value).is_integer():
        return str(int(value))
    if column in ("lr", "lr_final"):
        return f"{value:.3g}"
    if column.startswith(("fd_", "sharpness_")):
        return fmt_value(column, value)
    return fmt(value, 4 if column in ("bpd_disc", "bpd_deq", "recon_mse", "drift_bpd") else 2)


def cell(column: str, r: pd.Series) -> tuple[str, str]:
    """A cell of the every-run tables: the status coloured, text escaped (a commit shortened), a run's
    directory breakable anywhere, numbers as `number` prints them."""
    value = r[column]
    if column == "status":
        return esc(value), "status-ok" if value == OK else "status-bad"
    if column in TEXT_COLUMNS:
        shown = esc(str(value)[: TEXT_COLUMNS[column]]) if pd.notna(value) else ""
        return shown, "path" if column == "run_dir" else ""
    return number(column, value), "num"


def runs(study: Study) -> str:
    """Every run, one row each in four tables (status and likelihoods, other measures, training, cost and
    provenance), folded away."""
    m = study.metrics
    blocks = []
    for table_id, what, wanted in RUN_TABLES:
        columns = [(c, h) for c, h in wanted if c in m.columns]
        rows = [
            [family_label(study, r["family"]), esc(r["latent_dim"]), esc(r["seed"])]
            + [cell(c, r) for c, _ in columns]
            for _, r in m.iterrows()
        ]
        header = ["family", "z", "seed"] + [h for _, h in columns]
        blocks.append(f"<h4>{what}</h4>" + table(header, rows, f"id='{table_id}'"))
    return (
        f"<details class='runs'><summary>Every run ({len(m)} rows): status and likelihoods, other measures, "
        "training, cost and provenance</summary>" + "".join(blocks) + "</details>" + tests(study)
    )


def tests(study: Study) -> str:
    tests = study.tests[study.tests["metric"].isin(list(METRIC_NAMES))]
    notes = tests["note"].value_counts()
    common = notes.index[0] if len(notes) and notes.iloc[0] > 1 else ""  # said once, above the table
    rows = [
        [
            esc(t["metric"]),
            esc(t["latent_dim"]),
            family_label(study, t["family_a"]),
            family_label(study, t["family_b"]),
            esc(f"{t['n_a']:.0f}, {t['n_b']:.0f}"),
            (f"{t['n_images']:,.0f}" if finite(t["n_images"]) else "", "num"),
            esc(t["method"]),
            (f"{fmt(t['diff_mean'])} [{fmt(t['diff_ci95_low'])}, {fmt(t['diff_ci95_high'])}]", "num"),
            (fmt_p(t["p"]), "num"),
            (fmt_p(t["p_holm"]), "num"),
            (f"{t['runs_ahead']:.0f} of {t['run_pairs']:.0f}" if finite(t["run_pairs"]) else "", "num"),
            (f"[{fmt(t['gap_min'])}, {fmt(t['gap_max'])}]" if finite(t["gap_min"]) else "", "num"),
            "yes" if t["significant"] else "no",
            esc(t["note"] if t["note"] != common else ""),
        ]
        for _, t in tests.iterrows()
    ]
    said = f"<p class='small'>Unless a row says otherwise: {esc(common)}.</p>" if common else ""
    return (
        f"<details class='runs'><summary>Every pairwise test of the bits/dim ({len(tests)}; the "
        "other measures' tests are in tests.csv)</summary>"
        + said
        + table(TEST_HEADER, rows, "id='tests-table'")
        + "</details>"
    )
