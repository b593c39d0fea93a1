# Stages 5 and 6: the comparison figures, then the self-contained HTML report a person reads.


rule figures:
    input:
        metrics="results/{dataset}/metrics.csv",
        summary="results/{dataset}/summary.csv",
        tests="results/{dataset}/tests.csv",
    output:
        report(directory("results/{dataset}/figures"), patterns=["{name}.png"],
               caption="../report/figures.rst", category="Figures"),
    conda:
        "../../environment.yml"
    log:
        "logs/figures/{dataset}.log",
    shell:
        "vaebench figures --results results/{wildcards.dataset} --out-dir {output:q} > {log:q} 2>&1"


rule report:
    input:
        figures=f"results/{config['dataset']}/figures",
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
