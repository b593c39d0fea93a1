# Stage 2: one training job per (dataset, loss, latent dimension, seed).


rule train:
    input:
        unpack(selection_input),
        data=DATA,
    output:
        model=f"{RUN}/{layout.MODEL}",
        history=f"{RUN}/{layout.HISTORY}",
        run=f"{RUN}/{layout.RUN_RECORD}",
    log:
        f"logs/train/{RUN_JOB}.log",
    benchmark:
        f"benchmarks/train/{RUN_JOB}.tsv"
    conda:
        "../../environment.yml"
    threads: job_resource("train", "threads", 1)
    resources:
        mem_mb=job_resource("train", "mem_mb", 4000),
        runtime=job_resource("train", "runtime", 120),
        gpu=job_resource("train", "gpu", 0),
    params:
        dataset=DATASET,
        options=lambda w, input: cli_options({**train_options(), "selected": input.get("selected")}),
        outdir=lambda w, output: os.path.dirname(output.run),
        family_code=family_code,
    shell:
        "vaebench train --dataset {params.dataset} --loss {wildcards.loss} --latent-dim {wildcards.dim}"
        " --seed {wildcards.seed} {params.options} --threads {threads}"
        " --out {params.outdir:q} > {log:q} 2>&1"
