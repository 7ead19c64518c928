# Figures, registered for the Snakemake report (snakemake --report report.html).


rule plot_embeddings:
    input:
        single="results/alignment/single.parquet",
        multi="results/alignment/multi.parquet",
    output:
        png=report(
            "results/figures/embeddings.png",
            caption="../report/embeddings.rst",
            category="Embeddings",
        ),
        pdf="results/figures/embeddings.pdf",
    log:
        "logs/figures/embeddings.log",
    params:
        sessions=SESSIONS,
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/plot_embeddings.py"


rule plot_consistency:
    input:
        "results/tables/consistency.parquet",
    output:
        png=report(
            "results/figures/consistency.png",
            caption="../report/consistency.rst",
            category="Consistency",
        ),
        pdf="results/figures/consistency.pdf",
    log:
        "logs/figures/consistency.log",
    params:
        sessions=SESSIONS,
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/plot_consistency.py"


rule plot_loss:
    input:
        single=expand("results/fits/single/{session}/loss.parquet", session=SESSIONS),
        multi="results/fits/multi/loss.parquet",
    output:
        png=report(
            "results/figures/loss.png",
            caption="../report/loss.rst",
            category="Training",
        ),
        pdf="results/figures/loss.pdf",
    log:
        "logs/figures/loss.log",
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/plot_loss.py"

