# A new, unseen session (leave one animal out): a multi-session fit on every session but the
# held-out one ({session}), `CEBRA.adapt` of the held-out session into that space, and its
# consistency and decoding next to its single-session and full multi-session embeddings.


rule fit_multi_without:
    input:
        trained_session_tables,
    output:
        model="results/fits/multi_without/{session}/model.pt",
        loss="results/fits/multi_without/{session}/loss.parquet",
        embedding="results/fits/multi_without/{session}/embedding.parquet",
    log:
        "logs/fits/multi_without/{session}.log",
    benchmark:
        "results/benchmarks/fit_multi_without/{session}.tsv"
    params:
        sessions=trained_sessions,
        multi=True,
        cebra=cebra_params(),
        device=config["device"],
        checkpoint_dir="results/checkpoints/multi_without/{session}",
    threads: config["fit_threads"]
    resources:
        **gpu_resources(),
    conda:
        "../../envs/fit.yaml"
    script:
        "../scripts/fit.py"


rule adapt_session:
    input:
        model="results/fits/multi_without/{session}/model.pt",
        sessions=session_tables,
    output:
        model="results/new_session/{session}/model.pt",
        embedding="results/new_session/{session}/embedding.parquet",
        untrained="results/new_session/{session}/untrained.parquet",
    log:
        "logs/new_session/adapt_{session}.log",
    benchmark:
        "results/benchmarks/adapt_session/{session}.tsv"
    params:
        sessions=SESSIONS,
        iterations=config.get("new_session", {}).get("iterations"),
        device=config["device"],
    threads: config["fit_threads"]
    resources:
        **gpu_resources(),
    conda:
        "../../envs/fit.yaml"
    script:
        "../scripts/adapt_session.py"


rule score_new_session:
    input:
        adapted="results/new_session/{session}/embedding.parquet",
        untrained="results/new_session/{session}/untrained.parquet",
        single="results/alignment/single.parquet",
        multi="results/alignment/multi.parquet",
    output:
        table="results/tables/new_session_{session}.parquet",
        csv=report(
            "results/tables/new_session_{session}.csv",
            caption="../report/new_session_table.rst",
            category="New session",
        ),
    log:
        "logs/analysis/new_session_{session}.log",
    params:
        sessions=SESSIONS,
        bins=config["analysis"].get("consistency_bins", 100),
        neighbors=config["analysis"].get("decoding_neighbors", 36),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/score_new_session.py"


rule plot_new_session:
    input:
        "results/tables/new_session_{session}.parquet",
    output:
        png=report(
            "results/figures/new_session_{session}.png",
            caption="../report/new_session.rst",
            category="New session",
        ),
        pdf="results/figures/new_session_{session}.pdf",
    log:
        "logs/figures/new_session_{session}.log",
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/plot_new_session.py"
