# Stage 1b (studies with a `selection` block): each family's learning rate, and a fixed scale, chosen on
# the validation split. One training run per grid point (vaebench.select.grid), on the block's seed and
# latent size, capped at its epochs; each round of `select_round` keeps the point with the best validation
# ELBO and, while it sits at an edge of the points tried and selection.max_extensions allows, names one
# point further out to train for the next round. `select` keeps the last round's choice for every seed.


rule select_train:
    input:
        data=DATA,
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
        dataset=DATASET,
        options=lambda w: cli_options(
            {**train_options(), "epochs": config["selection"]["epochs"], **grid_point(w)}
        ),
        latent_dim=lambda w: config["selection"]["latent_dim"],
        seed=lambda w: config["selection"]["seed"],
        outdir=lambda w, output: os.path.dirname(output.run),
        family_code=family_code,
    shell:
        "vaebench train --dataset {params.dataset} --loss {wildcards.loss} --latent-dim {params.latent_dim}"
        " --seed {params.seed} {params.options} --threads {threads}"
        " --out {params.outdir:q} > {log:q} 2>&1"


checkpoint select_round:
    input:
        runs=selection_round_runs,
    output:
        layout.SELECTION_ROUND,
    log:
        "logs/select/{study}/{loss}/round{round}.log",
    benchmark:
        "benchmarks/select/{study}/{loss}/round{round}.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        runs=lambda w, input: " ".join(shlex.quote(os.path.dirname(run)) for run in input.runs),
        max_extensions=lambda w: config["selection"]["max_extensions"],
    shell:
        "vaebench select --runs {params.runs} --round {wildcards.round}"
        " --max-extensions {params.max_extensions} --out {output:q} > {log:q} 2>&1"


rule select:
    input:
        last_selection_round,
    output:
        f"{layout.CHOICE}.json",
    log:
        "logs/select/{study}/{loss}.log",
    conda:
        "../../environment.yml"
    shell:
        "cp {input:q} {output:q} 2> {log:q}"
