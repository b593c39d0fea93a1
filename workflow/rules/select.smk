# Stage 1b (studies with a `selection` block): each family's learning rate, and a fixed scale, chosen on
# the validation split. One short training run per grid point (vaebench.select.grid), on the block's seed
# and latent size; `select` keeps the point with the best validation ELBO for every seed's training.


rule select_train:
    input:
        data=layout.MANIFEST,
    output:
        model=f"{GRID_POINT}/{layout.MODEL}",
        history=f"{GRID_POINT}/{layout.HISTORY}",
        run=f"{GRID_POINT}/{layout.RUN_RECORD}",
    log:
        f"logs/select_train/{GRID_JOB}.log",
    benchmark:
        f"benchmarks/select_train/{GRID_JOB}.tsv"
    conda:
        "../../environment.yml"
    threads: job_resource("train", "threads", 1)
    resources:
        mem_mb=job_resource("train", "mem_mb", 4000),
        runtime=job_resource("train", "runtime", 120),
        gpu=job_resource("train", "gpu", 0),
    params:
        options=lambda w: cli_options(
            {**train_options(), "epochs": config["selection"]["epochs"], **grid_point(w)}
        ),
        latent_dim=lambda w: config["selection"]["latent_dim"],
        seed=lambda w: config["selection"]["seed"],
        outdir=lambda w, output: os.path.dirname(output.run),
        family_code=family_code,
    shell:
        "vaebench train --dataset {wildcards.dataset} --loss {wildcards.loss} --latent-dim {params.latent_dim}"
        " --seed {params.seed} {params.options} --threads {threads}"
        " --out {params.outdir:q} > {log:q} 2>&1"


rule select:
    input:
        runs=lambda w: expand(
            f"{GRID_POINT}/{layout.RUN_RECORD}",
            point=range(len(selection_grid(w.loss))),
            allow_missing=True,
        ),
    output:
        f"{layout.CHOICE}.json",
    log:
        "logs/select/{dataset}/{loss}.log",
    conda:
        "../../environment.yml"
    params:
        runs=lambda w, input: " ".join(shlex.quote(os.path.dirname(run)) for run in input.runs),
    shell:
        "vaebench select --runs {params.runs} --out {output:q} > {log:q} 2>&1"
