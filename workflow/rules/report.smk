# Stages 5 and 6: the comparison figures, then the self-contained HTML report a person reads.
# The figures stage always writes all of them (a panel says why where a study has nothing to
# draw), so each can carry its own caption in Snakemake's report, partial runs included.
# A figure's title and caption live once, in workflow/report/NAME.rst: Snakemake's report shows
# the file, and `vaebench report` reads it (so editing a caption reruns the report). Each study's
# page is report/STUDY/index.html (the config's `study`, default the dataset); report/index.html lists
# every study's page and is rewritten by each report job.

from vaebench.captions import FIGURES  # the figures' names in page order; imports no matplotlib

CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")
FIGURES_DIR = f"{RESULTS}/{layout.FIGURES}"
STUDY_RESULTS = RESULTS.format(study=STUDY)  # the report has no {study} wildcard


# --manifest and, when there is one, --quality for `vaebench figures` and `vaebench report`
REFERENCE_OPTIONS = lambda w, input: " ".join(
    [f"--manifest {shlex.quote(input.manifest)}"] + [f"--quality {shlex.quote(q)}" for q in input.quality]
)


rule figures:
    input:
        metrics=METRICS_TABLE,
        summary=SUMMARY_TABLE,
        tests=TESTS_TABLE,
        baselines=f"{RESULTS}/{layout.BASELINES}",
        manifest=DATA,
        quality=quality_input(),
    output:
        png=[
            report(
                f"{FIGURES_DIR}/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURES
        ],
        svg=[f"{FIGURES_DIR}/{name}.svg" for name in FIGURES],
    log:
        "logs/figures/{study}.log",
    benchmark:
        "benchmarks/figures/{study}.tsv"
    conda:
        "../../environment.yml"
    params:
        results=lambda w, input: os.path.dirname(input.metrics),
        outdir=lambda w, output: os.path.dirname(output.png[0]),
        references=REFERENCE_OPTIONS,
    shell:
        "vaebench figures --results {params.results:q} --out-dir {params.outdir:q}"
        " {params.references} > {log:q} 2>&1"


rule report:
    input:
        figures=expand(f"{FIGURES_DIR}/{{name}}.png", study=STUDY, name=FIGURES),
        captions=[os.path.join(CAPTIONS, f"{name}.rst") for name in FIGURES],
        study=f"{STUDY_RESULTS}/{layout.STUDY_CONFIG}",
        baselines=f"{STUDY_RESULTS}/{layout.BASELINES}",
        manifest=DATA,
        quality=quality_input(),
    output:
        page=report(layout.REPORT.format(study=STUDY), caption="../report/index.rst", category="Report"),
        index=layout.REPORT_INDEX,
    log:
        f"logs/report/{STUDY}.log",
    benchmark:
        f"benchmarks/report/{STUDY}.tsv"
    conda:
        "../../environment.yml"
    params:
        results=lambda w, input: os.path.dirname(input.study),
        captions=lambda w, input: os.path.dirname(input.captions[0]),
        references=REFERENCE_OPTIONS,
    shell:
        "vaebench report --results {params.results:q} --config {input.study:q} --captions {params.captions:q}"
        " {params.references} --out {output.page:q} --index {output.index:q} > {log:q} 2>&1"
