"""The command line: `--help` of every stage without torch or pandas, and every value `--help` does not allow
refused in one line before anything runs."""

import contextlib
import io
import subprocess
import sys

import pytest
from synthetic_runs import write_synthetic_results

from vaebench.cli import ARGUMENTS, main
from vaebench.settings import MAX_SEED, THREADS

HEAVY = ("torch", "numpy", "scipy", "pandas", "matplotlib", "seaborn", "tqdm")


def test_parsing_any_stage_imports_no_heavy_library():
    code = (
        "import contextlib, io, sys\nfrom vaebench.cli import ARGUMENTS, main\n"
        "for stage in ARGUMENTS:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main([stage, '--help'])\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("stage", sorted(ARGUMENTS))
def test_every_stage_has_help(stage, capsys):
    with pytest.raises(SystemExit) as done:
        main([stage, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: vaebench {stage} ")


def test_the_thread_default_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"(default: {THREADS}, the fastest for a lone job on CPU" in shown


TRAIN = ["train", "--out", "unused"]
EVALUATE = ["evaluate", "--run", "unused", "--out", "unused/metrics.json"]
REFUSED = [
    (TRAIN + ["--latent-dim", "0"], "argument --latent-dim: must be a positive integer, got '0'"),
    (TRAIN + ["--epochs", "0"], "argument --epochs: must be a positive integer, got '0'"),
    (TRAIN + ["--hidden", "0"], "argument --hidden: must be a positive integer, got '0'"),
    (TRAIN + ["--batch-size", "0"], "argument --batch-size: must be a positive integer, got '0'"),
    (TRAIN + ["--batch-size", "1.5"], "argument --batch-size: must be a positive integer, got '1.5'"),
    (TRAIN + ["--lr", "0"], "argument --lr: must be a finite positive number, got '0'"),
    (TRAIN + ["--lr", "-0.001"], "argument --lr: must be a finite positive number, got '-0.001'"),
    (TRAIN + ["--lr", "nan"], "argument --lr: must be a finite positive number, got 'nan'"),
    (TRAIN + ["--lr", "inf"], "argument --lr: must be a finite positive number, got 'inf'"),
    (TRAIN + ["--sigma", "0"], "argument --sigma: must be a finite positive number, got '0'"),
    (TRAIN + ["--laplace-b", "-1"], "argument --laplace-b: must be a finite positive number, got '-1'"),
    (TRAIN + ["--seed", "-1"], f"argument --seed: must be an integer from 0 to {MAX_SEED}, got '-1'"),
    (
        TRAIN + ["--seed", str(2**64)],
        f"argument --seed: must be an integer from 0 to {MAX_SEED}, got '{2**64}'",
    ),
    (
        TRAIN + ["--threads", "-1"],
        "argument --threads: must be 0 (torch's own default) or a positive integer, got '-1'",
    ),
    (TRAIN + ["--loss", "gausian"], "argument --loss: unknown family 'gausian'; did you mean 'gaussian'?"),
    (TRAIN + ["--dataset", "mnsit"], "argument --dataset: unknown dataset 'mnsit'; did you mean 'mnist'?"),
    (TRAIN + ["--arch", "cnn"], "argument --arch: unknown architecture 'cnn'"),
    (TRAIN + ["--device", "gpu"], "argument --device: unknown device 'gpu': use auto, cpu, cuda or cuda:N"),
    (["train"], "the following arguments are required: --out"),
    (TRAIN + ["--epohcs", "3"], "unrecognized arguments: --epohcs 3"),
    (EVALUATE + ["--k", "0"], "argument --k: must be a positive integer, got '0'"),
    (EVALUATE + ["--n-test", "0"], "argument --n-test: must be a positive integer, got '0'"),
    (EVALUATE + ["--batch", "-5"], "argument --batch: must be a positive integer, got '-5'"),
    (EVALUATE + ["--chunk", "0"], "argument --chunk: must be a positive integer, got '0'"),
    (EVALUATE + ["--seed", "-3"], f"argument --seed: must be an integer from 0 to {MAX_SEED}, got '-3'"),
    (
        EVALUATE + ["--threads", "-2"],
        "argument --threads: must be 0 (torch's own default) or a positive integer, got '-2'",
    ),
    (EVALUATE + ["--device", "cuda:x"], "argument --device: unknown device 'cuda:x'"),
    (
        ["data", "--dataset", "cifar", "--out", "m.json"],
        "argument --dataset: unknown dataset 'cifar'; did you mean 'cifar10'?",
    ),
    (["aggregate"], "the following arguments are required: --results"),
    (["nonsense"], "argument STAGE: invalid choice: 'nonsense'"),
]


@pytest.mark.parametrize("argv,message", REFUSED, ids=[" ".join(argv[:1] + argv[-2:]) for argv, _ in REFUSED])
def test_a_value_help_does_not_allow_is_refused_in_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    stage = f"vaebench {argv[0]}" if argv[0] in ARGUMENTS else "vaebench"
    assert err.startswith(f"{stage}: error: {message}") and err.count("\n") == 1, err


def test_report_refuses_a_figures_folder_that_is_not_there(tmp_path, capsys):
    study = write_synthetic_results(
        tmp_path / "results" / "mnist5k",
        families=("gaussian",),
        latent_dims=(2,),
        seeds=(0,),
        diverged=None,
        missing=None,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["aggregate", "--results", str(study.results)]) == 0
    missing = tmp_path / "nowhere"
    assert (
        main(
            [
                "report",
                "--results",
                str(study.results),
                "--figures",
                str(missing),
                "--out",
                str(tmp_path / "index.html"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == (
        f"vaebench report: error: figures folder {missing} does not exist: run "
        f"`vaebench figures --results {study.results}` first, or point --figures at it\n"
    )
    assert not (tmp_path / "index.html").exists()


def test_outputs_that_cannot_be_files_are_refused_before_the_work(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file where the run directory would go")
    taken = ["--out", str(tmp_path / "taken")]
    assert main(["train", "--epochs", "1", *taken, "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err.endswith(f"error: cannot create {tmp_path / 'taken'}: file exists\n")
    for option in ("--out", "--artifacts"):
        argv = ["evaluate", "--run", str(tmp_path), "--out", str(tmp_path / "m.json"), option, str(tmp_path)]
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            f"vaebench evaluate: error: {option} {tmp_path} is a directory: name the file to write\n"
        )
