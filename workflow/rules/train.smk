# Stage 2: one training job per (dataset, loss, latent dimension, seed).


rule train:
    input:
        unpack(selection_input),
        data="resources/{dataset}.json",
    output:
        model=f"{RUN}/model.pt",
        history=f"{RUN}/history.csv",
        run=f"{RUN}/run.json",
    conda:
        "../../environment.yml"
    log:
        f"{RUN}/train.log",
    params:
        options=lambda w, input: cli_options({**train_options(), "selected": input.get("selected")}),
        family_code=family_code,
    threads: job_resource("train", "threads", 1)
    resources:
        mem_mb=job_resource("train", "mem_mb", 4000),
        runtime=job_resource("train", "runtime", 120),
        gpu=job_resource("train", "gpu", 0),
    shell:
        "vaebench train --dataset {wildcards.dataset} --loss {wildcards.loss} --latent-dim {wildcards.dim}"
        " --seed {wildcards.seed} {params.options} --threads {threads}"
        " --out $(dirname {output.model:q}) > {log:q} 2>&1"
