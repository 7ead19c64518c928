# Fits: one single-session model per session (wildcard) and one multi-session model over all.
# Each keeps a checkpoint under results/checkpoints/ (not an output) and resumes from it.


rule fit_single:
    input:
        "results/data/sessions/{session}.parquet",
    output:
        model="results/fits/single/{session}/model.pt",
        loss="results/fits/single/{session}/loss.parquet",
        embedding="results/fits/single/{session}/embedding.parquet",
    log:
        "logs/fits/single/{session}.log",
    benchmark:
        "results/benchmarks/fit_single/{session}.tsv"
    params:
        sessions=lambda wildcards: [wildcards.session],
        multi=False,
        cebra=cebra_params(),
        device=config["device"],
        checkpoint_dir="results/checkpoints/single/{session}",
    threads: config["fit_threads"]
    resources:
        **gpu_resources(),
    conda:
        "../../envs/fit.yaml"
    script:
        "../scripts/fit.py"


rule fit_multi:
    input:
        session_tables,
    output:
        model="results/fits/multi/model.pt",
        loss="results/fits/multi/loss.parquet",
        embedding="results/fits/multi/embedding.parquet",
    log:
        "logs/fits/multi.log",
    benchmark:
        "results/benchmarks/fit_multi.tsv"
    params:
        sessions=SESSIONS,
        multi=True,
        cebra=cebra_params(),
        device=config["device"],
        checkpoint_dir="results/checkpoints/multi",
    threads: config["fit_threads"]
    resources:
        **gpu_resources(),
    conda:
        "../../envs/fit.yaml"
    script:
        "../scripts/fit.py"
