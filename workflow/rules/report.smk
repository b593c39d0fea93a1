# Stages 5 and 6: the comparison figures, then the self-contained HTML report a person reads.
# The figures stage always writes all nine (a panel says why where a study has nothing to
# draw), so each can carry its own caption in Snakemake's report, partial runs included.

FIGURES = ["bpd_vs_latent", "learning_curves", "reconstructions", "samples", "latent_scatter",
           "std_maps", "calibration", "significance", "cost"]


rule figures:
    input:
        metrics="results/{dataset}/metrics.csv",
        summary="results/{dataset}/summary.csv",
        tests="results/{dataset}/tests.csv",
    output:
        png=[report(f"results/{{dataset}}/figures/{name}.png", caption=f"../report/{name}.rst",
                    category="Figures") for name in FIGURES],
        svg=[f"results/{{dataset}}/figures/{name}.svg" for name in FIGURES],
    conda:
        "../../environment.yml"
    log:
        "logs/figures/{dataset}.log",
    params:
        out_dir=lambda w, output: os.path.dirname(output.png[0]),
    shell:
        "vaebench figures --results results/{wildcards.dataset} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule report:
    input:
        figures=expand("results/{dataset}/figures/{name}.png", dataset=config["dataset"], name=FIGURES),
        study=f"results/{config['dataset']}/study.yaml",
    output:
        report("report/index.html", caption="../report/index.rst", category="Report"),
    conda:
        "../../environment.yml"
    log:
        "logs/report.log",
    params:
        results=lambda w, input: os.path.dirname(input.study),
    shell:
        "vaebench report --results {params.results:q} --config {input.study:q} --out {output:q} > {log:q} 2>&1"
