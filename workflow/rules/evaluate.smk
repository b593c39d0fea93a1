# Stage 3: score each trained model (importance-sampled test log-likelihood and the other
# metrics). A job of its own, so raising K re-runs evaluation only, never training.


rule evaluate:
    input:
        model=f"{RUN}/model.pt",
        run=f"{RUN}/run.json",
        classifier="resources/quality/{dataset}.pt",
    output:
        metrics=f"{RUN}/metrics.json",
        artifacts=f"{RUN}/artifacts.npz",
    conda:
        "../../environment.yml"
    log:
        f"{RUN}/evaluate.log",
    params:
        options=lambda w: cli_options(
            {"device": config["device"], "data_dir": config["data_dir"], **config["evaluate"]}
        ),
    threads: job_resource("evaluate", "threads", 1)
    resources:
        mem_mb=job_resource("evaluate", "mem_mb", 8000),
        runtime=job_resource("evaluate", "runtime", 120),
        gpu=job_resource("evaluate", "gpu", 0),
    shell:
        "vaebench evaluate --run $(dirname {output.metrics:q}) {params.options} --threads {threads}"
        " --classifier {input.classifier:q} --out {output.metrics:q} --artifacts {output.artifacts:q}"
        " > {log:q} 2>&1"
