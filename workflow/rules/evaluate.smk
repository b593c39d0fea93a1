# Stage 3: score each trained model (importance-sampled test log-likelihood and the other
# metrics). A job of its own, so raising K re-runs evaluation only, never training.
# A study that compiles builds each family's kernels once (warm_compile) before its evaluations load them.


rule warm_compile:
    input:
        unpack(warm_run),
    output:
        WARM,
    log:
        "logs/warm_compile/{study}/{loss}.log",
    benchmark:
        "benchmarks/warm_compile/{study}/{loss}.tsv"
    conda:
        "../../environment.yml"
    threads: job_resource("evaluate", "threads", 1)
    resources:
        mem_mb=job_resource("evaluate", "mem_mb", 8000),
        runtime=job_resource("evaluate", "runtime", 120),
        gpu=job_resource("evaluate", "gpu", 0),
    params:
        options=lambda w: cli_options(evaluate_options()),
        run_dir=lambda w, input: os.path.dirname(input.run),
        family_code=family_code,
    shell:
        "vaebench warm --run {params.run_dir:q} {params.options} --threads {threads} --out {output:q}"
        " > {log:q} 2>&1"


rule evaluate:
    input:
        model=f"{RUN}/{layout.MODEL}",
        run=f"{RUN}/{layout.RUN_RECORD}",
        classifier=layout.CLASSIFIER.format(dataset=DATASET),
        warm=warm_input,
    output:
        metrics=f"{RUN}/{layout.METRICS}",
        artifacts=f"{RUN}/{layout.ARTIFACTS}",
    log:
        f"logs/evaluate/{RUN_JOB}.log",
    benchmark:
        f"benchmarks/evaluate/{RUN_JOB}.tsv"
    conda:
        "../../environment.yml"
    threads: job_resource("evaluate", "threads", 1)
    resources:
        mem_mb=job_resource("evaluate", "mem_mb", 8000),
        runtime=job_resource("evaluate", "runtime", 120),
        gpu=job_resource("evaluate", "gpu", 0),
    params:
        options=lambda w: cli_options(evaluate_options()),
        run_dir=lambda w, input: os.path.dirname(input.run),
    shell:
        "vaebench evaluate --run {params.run_dir:q} {params.options} --threads {threads}"
        " --classifier {input.classifier:q} --out {output.metrics:q} --artifacts {output.artifacts:q}"
        " > {log:q} 2>&1"
