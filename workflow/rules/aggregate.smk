# Stage 4: collect every run of the dataset (what exists on disk, plus the config's runs that
# are missing) into tables with statistics. Partial reruns therefore report what exists. Beside
# them, the baselines: models without a latent fitted on the training split and scored on the
# same test images as the evaluations (evaluate.n_test), so a bits/dim number means something.


rule study_config:
    output:
        f"{RESULTS}/{layout.STUDY_CONFIG}",
    log:
        "logs/study_config/{study}.log",
    params:
        text=lambda w: yaml.safe_dump(dict(config), sort_keys=True),
    run:
        Path(output[0]).write_text(params.text)
        Path(log[0]).write_text(f"wrote the validated study config to {output[0]}\n")


rule aggregate:
    input:
        metrics=[f"{run}/{layout.METRICS}" for run in run_dirs()],
        study=f"{RESULTS}/{layout.STUDY_CONFIG}",
    output:
        metrics=report(METRICS_TABLE, caption="../report/metrics.rst", category="Tables"),
        summary=report(SUMMARY_TABLE, caption="../report/summary.rst", category="Tables"),
        tests=report(TESTS_TABLE, caption="../report/tests.rst", category="Tables"),
    log:
        "logs/aggregate/{study}.log",
    benchmark:
        "benchmarks/aggregate/{study}.tsv"
    conda:
        "../../environment.yml"
    params:
        results=lambda w, input: os.path.dirname(input.study),
        expected=" ".join(shlex.quote(run) for run in run_dirs()),
    shell:
        "vaebench aggregate --results {params.results:q} --out-dir {params.results:q}"
        " --expected {params.expected} > {log:q} 2>&1"


rule baselines:
    input:
        data=DATA,
    output:
        f"{RESULTS}/{layout.BASELINES}",
    log:
        "logs/baselines/{study}.log",
    benchmark:
        "benchmarks/baselines/{study}.tsv"
    conda:
        "../../environment.yml"
    params:
        dataset=DATASET,
        options=lambda w: cli_options(
            {"data_dir": config["data_dir"], "n_test": config["evaluate"].get("n_test")}
        ),
    shell:
        "vaebench baselines --dataset {params.dataset} {params.options} --out {output:q} > {log:q} 2>&1"
