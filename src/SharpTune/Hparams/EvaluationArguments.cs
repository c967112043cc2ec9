namespace SharpTune.Hparams;

/// <summary>LLaMA-Factory's evaluation arguments for benchmark runs (`sharptune eval`; defaults as in its hparams/evaluation_args.py).</summary>
public sealed class EvaluationArguments
{
    /// <summary>task: BENCHMARK_SPLIT, e.g. mmlu_test, cmmlu_test, ceval_validation.</summary>
    public string? Task { get; set; }
    /// <summary>task_dir: the folder holding the evaluation sets (one folder per benchmark).</summary>
    public string TaskDir { get; set; } = "evaluation";
    /// <summary>batch_size: questions scored together.</summary>
    public int BatchSize { get; set; } = 4;
    /// <summary>lang: the evaluation template, en or zh.</summary>
    public string Lang { get; set; } = "en";
    /// <summary>n_shot: few-shot examples before each question.</summary>
    public int NShot { get; set; } = 5;
    /// <summary>save_dir: where results.json and results.log go; it must not exist yet. Null saves nothing.</summary>
    public string? SaveDir { get; set; }
}
