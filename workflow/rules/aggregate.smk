# Stage 4: collect every run of the dataset (what exists on disk, plus the config's runs that
# are missing) into tables with statistics. Partial reruns therefore report what exists.


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
