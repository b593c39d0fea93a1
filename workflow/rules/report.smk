# Stages 5 and 6: the comparison figures, then the self-contained HTML report a person reads.
# The figures stage always writes all of them (a panel says why where a study has nothing to
# draw), so each can carry its own caption in Snakemake's report, partial runs included.
# A figure's title and caption live once, in workflow/report/NAME.rst: Snakemake's report shows
# the file, and `vaebench report` reads it (so editing a caption reruns the report).

from vaebench.captions import FIGURES  # the figures' names in page order; imports no matplotlib

CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")


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
        captions=[os.path.join(CAPTIONS, f"{name}.rst") for name in FIGURES],
        study=f"results/{config['dataset']}/study.yaml",
    output:
        report("report/index.html", caption="../report/index.rst", category="Report"),
    conda:
        "../../environment.yml"
    log:
        "logs/report.log",
    params:
        results=lambda w, input: os.path.dirname(input.study),
        captions=lambda w, input: os.path.dirname(input.captions[0]),
    shell:
        "vaebench report --results {params.results:q} --config {input.study:q} --captions {params.captions:q}"
        " --out {output:q} > {log:q} 2>&1"
