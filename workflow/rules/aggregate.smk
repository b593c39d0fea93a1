# Stage 4: collect every run of the dataset (what exists on disk, plus the config's runs that
# are missing) into tables with statistics. Partial reruns therefore report what exists. Beside
# them, the baselines: models without a latent fitted on the training split and scored on the
# same test images as the evaluations (evaluate.n_test), so a bits/dim number means something.


rule study_config:
    output:
        "results/{dataset}/study.yaml",
    log:
        "logs/study_config/{dataset}.log",
    params:
        text=lambda w: yaml.safe_dump(dict(config), sort_keys=True),
    run:
        Path(output[0]).write_text(params.text)
        Path(log[0]).write_text(f"wrote the validated study config to {output[0]}\n")


rule aggregate:
    input:
        metrics=lambda w: [f"{run}/metrics.json" for run in run_dirs()],
        study="results/{dataset}/study.yaml",
    output:
        metrics=report("results/{dataset}/metrics.csv", caption="../report/metrics.rst", category="Tables"),
        summary=report("results/{dataset}/summary.csv", caption="../report/summary.rst", category="Tables"),
        tests=report("results/{dataset}/tests.csv", caption="../report/tests.rst", category="Tables"),
    conda:
        "../../environment.yml"
    log:
        "logs/aggregate/{dataset}.log",
    params:
        expected=lambda w: " ".join(shlex.quote(run) for run in run_dirs()),
    shell:
        "vaebench aggregate --results results/{wildcards.dataset} --out-dir results/{wildcards.dataset}"
        " --expected {params.expected} > {log:q} 2>&1"


rule baselines:
    input:
        data="resources/{dataset}.json",
    output:
        "results/{dataset}/baselines.json",
    conda:
        "../../environment.yml"
    log:
        "logs/baselines/{dataset}.log",
    params:
        options=lambda w: cli_options(
            {"data_dir": config["data_dir"], "n_test": config["evaluate"].get("n_test")}
        ),
    shell:
        "vaebench baselines --dataset {wildcards.dataset} {params.options} --out {output:q} > {log:q} 2>&1"
