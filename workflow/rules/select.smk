# Stage 1b (studies with a `selection` block): each family's learning rate, and a fixed scale, chosen on
# the validation split. One short training run per grid point (vaebench.select.grid), on the block's seed
# and latent size; `select` keeps the point with the best validation ELBO for every seed's training.

SELECTION = "results/{dataset}/selection/{loss}"


rule select_train:
    input:
        data="resources/{dataset}.json",
    output:
        model=f"{SELECTION}/point{{point}}/model.pt",
        history=f"{SELECTION}/point{{point}}/history.csv",
        run=f"{SELECTION}/point{{point}}/run.json",
    conda:
        "../../environment.yml"
    log:
        f"{SELECTION}/point{{point}}/train.log",
    params:
        options=lambda w: cli_options(
            {**train_options(), "epochs": config["selection"]["epochs"], **grid_point(w)}
        ),
        latent_dim=lambda w: config["selection"]["latent_dim"],
        seed=lambda w: config["selection"]["seed"],
        family_code=family_code,
    threads: job_resource("train", "threads", 1)
    resources:
        mem_mb=job_resource("train", "mem_mb", 4000),
        runtime=job_resource("train", "runtime", 120),
        gpu=job_resource("train", "gpu", 0),
    shell:
        "vaebench train --dataset {wildcards.dataset} --loss {wildcards.loss} --latent-dim {params.latent_dim}"
        " --seed {params.seed} {params.options} --threads {threads}"
        " --out $(dirname {output.model:q}) > {log:q} 2>&1"


rule select:
    input:
        runs=lambda w: expand(
            f"{SELECTION}/point{{point}}/run.json", point=range(len(selection_grid(w.loss))), allow_missing=True
        ),
    output:
        f"{SELECTION}.json",
    conda:
        "../../environment.yml"
    log:
        f"{SELECTION}/select.log",
    params:
        runs=lambda w, input: " ".join(shlex.quote(str(Path(r).parent)) for r in input.runs),
    shell:
        "vaebench select --runs {params.runs} --out {output:q} > {log:q} 2>&1"
