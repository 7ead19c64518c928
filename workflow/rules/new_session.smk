# A new, unseen session (leave one animal out), held out twice: the `fit` rule trains
# multi_without/<session> on the other sessions' train parts; `CEBRA.adapt` fits the held-out
# session's encoder on its train part; every score is computed on its test part, next to its
# single-session and full multi-session held-out fits and an untrained encoder.


rule adapt_session:
    input:
        model=fit_file("model.pt", "{fold}", "{seed}", "multi_without/{session}"),
        sessions=[session_table(s) for s in SESSIONS],
    output:
        model="results/new_session/{fold}/seed{seed}/{session}/model.pt",
        embedding="results/new_session/{fold}/seed{seed}/{session}/embedding.parquet",
        untrained="results/new_session/{fold}/seed{seed}/{session}/untrained.parquet",
    log:
        "logs/new_session/{fold}/seed{seed}/adapt_{session}.log",
    benchmark:
        "results/benchmarks/adapt_session/{fold}/seed{seed}/{session}.tsv"
    conda:
        "../../envs/fit.yaml"
    threads: config["fit_threads"]
    resources:
        **gpu_resources(),
    params:
        sessions=SESSIONS,
        trained=TRAINED,
        split=lambda wildcards: plan.split_params(wildcards.fold),
        iterations=config["new_session"]["iterations"],
        device=config["device"],
        signals=config["signals"],
    script:
        "../scripts/adapt_session.py"


rule score_new_session:
    input:
        adapted=all_seeds(
            rules.adapt_session.output.embedding, fold=FOLDS, session="{session}"
        ),
        untrained=all_seeds(
            rules.adapt_session.output.untrained, fold=FOLDS, session="{session}"
        ),
        single=[
            fit_file("embedding.parquet", fold, seed, f"single/{s}")
            for seed in SEEDS
            for fold in FOLDS
            for s in SESSIONS
        ],
        multi=all_seeds(
            fit_file("embedding.parquet", "{fold}", "{seed}", "multi"), fold=FOLDS
        ),
    output:
        table="results/tables/new_session_{session}.parquet",
        csv=report(
            "results/tables/new_session_{session}.csv",
            caption="../report/new_session_table.rst",
            category="New session",
        ),
    log:
        "logs/analysis/new_session_{session}.log",
    benchmark:
        "results/benchmarks/score_new_session/{session}.tsv"
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    params:
        sessions=SESSIONS,
        runs=[{"seed": int(seed), "fold": fold} for seed in SEEDS for fold in FOLDS],
        bins=config["analysis"]["consistency_bins"],
        neighbors=config["analysis"]["decoding_neighbors"],
        min_coverage=config["evaluation"]["min_coverage"],
    script:
        "../scripts/score_new_session.py"


rule plot_new_session:
    input:
        rules.score_new_session.output.table,
    output:
        png=report(
            "results/figures/new_session_{session}.png",
            caption="../report/new_session.rst",
            category="New session",
        ),
        pdf="results/figures/new_session_{session}.pdf",
    log:
        "logs/figures/new_session_{session}.log",
    benchmark:
        "results/benchmarks/plot_new_session/{session}.tsv"
    group:
        "post"
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/plot_new_session.py"
