# Stages 5 and 6: the comparison figures, then the self-contained HTML report a person reads.
# The figures stage always writes all of them (a panel says why where a study has nothing to
# draw), so each can carry its own caption in Snakemake's report, partial runs included.
# A figure's title and caption live once, in workflow/report/NAME.rst: Snakemake's report shows
# the file, and `vaebench report` reads it (so editing a caption reruns the report). Each study's
# page is report/STUDY/index.html (the config's `study`, default the dataset); report/index.html lists
# every study's page and is rewritten by each report job.

from vaebench.captions import FIGURES  # the figures' names in page order; imports no matplotlib

CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")


STUDY = config.get("study") or config["dataset"]  # report/STUDY/index.html: no study overwrites another


# the picture-quality references of the test images, when the workflow has the rule that writes them
QUALITY_INPUT = lambda w: (
    [f"resources/quality/{config['dataset']}.json"] if workflow.is_rule("classifier") else []
)
# --manifest and, when there is one, --quality for `vaebench figures` and `vaebench report`
REFERENCE_OPTIONS = lambda w, input: " ".join(
    [f"--manifest {shlex.quote(input.manifest)}"] + [f"--quality {shlex.quote(q)}" for q in input.quality]
)


rule figures:
    input:
        metrics="results/{dataset}/metrics.csv",
        summary="results/{dataset}/summary.csv",
        tests="results/{dataset}/tests.csv",
        baselines="results/{dataset}/baselines.json",
        manifest="resources/{dataset}.json",
        quality=QUALITY_INPUT,
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
        references=REFERENCE_OPTIONS,
    shell:
        "vaebench figures --results results/{wildcards.dataset} --out-dir {params.out_dir:q}"
        " {params.references} > {log:q} 2>&1"


rule report:
    input:
        figures=expand("results/{dataset}/figures/{name}.png", dataset=config["dataset"], name=FIGURES),
        captions=[os.path.join(CAPTIONS, f"{name}.rst") for name in FIGURES],
        study=f"results/{config['dataset']}/study.yaml",
        baselines=f"results/{config['dataset']}/baselines.json",
        manifest=f"resources/{config['dataset']}.json",
        quality=QUALITY_INPUT,
    output:
        page=report(f"report/{STUDY}/index.html", caption="../report/index.rst", category="Report"),
        index="report/index.html",
    conda:
        "../../environment.yml"
    log:
        f"logs/report/{STUDY}.log",
    params:
        results=lambda w, input: os.path.dirname(input.study),
        captions=lambda w, input: os.path.dirname(input.captions[0]),
        references=REFERENCE_OPTIONS,
    shell:
        "vaebench report --results {params.results:q} --config {input.study:q} --captions {params.captions:q}"
        " {params.references} --out {output.page:q} --index {output.index:q} > {log:q} 2>&1"
