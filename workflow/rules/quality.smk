# Stage 1b: the small classifier per dataset whose features score the pictures (vaebench.classifier),
# trained once on the CPU and checked for accuracy; its json holds the reference values (the floor,
# blurred images, noise) on the same N test images the evaluations use, so it follows evaluate.n_test.


rule classifier:
    input:
        data=layout.MANIFEST,
    output:
        model=layout.CLASSIFIER,
        summary=layout.QUALITY,
    log:
        "logs/classifier/{dataset}.log",
    benchmark:
        "benchmarks/classifier/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: job_resource("train", "threads", 1)
    resources:
        mem_mb=job_resource("train", "mem_mb", 4000),
        runtime=job_resource("train", "runtime", 120),
    params:
        options=lambda w: cli_options(
            {"data_dir": config["data_dir"], "n_test": config["evaluate"].get("n_test")}
        ),
    shell:
        "vaebench classifier --dataset {wildcards.dataset} {params.options} --threads {threads}"
        " --out {output.model:q} > {log:q} 2>&1"
