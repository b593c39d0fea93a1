# Stage 1: make sure the dataset is on disk (downloading it once, on the submit host) and
# record its sha256, so training jobs never race to download it.


rule data:
    output:
        layout.MANIFEST,
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/data/{dataset}.tsv"
    conda:
        "../../environment.yml"
    params:
        data_dir=lambda w: shlex.quote(config["data_dir"]),
    shell:
        "vaebench data --dataset {wildcards.dataset} --data-dir {params.data_dir} --out {output:q} > {log:q} 2>&1"
