using System.Text.Json;
using SharpTune.Tests.EndToEnd;

namespace SharpTune.Tests.Board;

/// <summary>The chat, compare, export and evaluate tab tests share one trained board, one test at a time (one chat model, one task per tab).</summary>
[CollectionDefinition(Name)]
public sealed class TrainedBoardCollection : ICollectionFixture<TrainedBoardSite>
{
    public const string Name = "trained board";
}

/// <summary>
/// A board whose saves/ already holds a finished LoRA run on the identity data, trained from its YAML file as
/// `sharptune train` reads it until the tiny model answers with the trained identity (as CompareAfterTrainingTests
/// trains it), and a prediction run of that adapter: the chat, compare, export and evaluate tabs start from there
/// without waiting on the Train tab.
/// </summary>
public sealed class TrainedBoardSite : BoardSite, IAsyncLifetime
{
    /// <summary>The run's folder as the page names it (relative to the board's root).</summary>
    public const string AdapterRun = "saves/tiny/lora/train_identity";
    public const string PredictRun = "saves/tiny/lora/predict_identity";

    /// <summary>How many identity records are trained on and predicted.</summary>
    public const int Records = 3;

    public string PathOf(string relative) => Path.Combine(Root, relative);

    /// <summary>The identity data's first answers, which the trained adapter gives back.</summary>
    public static IReadOnlyList<(string Question, string Answer)> Identity { get; } =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(TinyModelFixture.BundledData, "identity.json"))).RootElement
            .EnumerateArray().Take(Records).Select(e => (e.GetProperty("instruction").GetString()!, e.GetProperty("output").GetString()!)).ToList();

    public new async Task InitializeAsync()
    {
        await base.InitializeAsync();
        string common = $"""
            model_name_or_path: {JsonSerializer.Serialize(PathOf("models/tiny"))}
            stage: sft
            finetuning_type: lora
            lora_rank: 8
            lora_target: all
            dataset_dir: {JsonSerializer.Serialize(PathOf("data"))}
            template: qwen
            cutoff_len: 64
            max_samples: {Records}
            seed: 42

            """;
        TinyModelFixture.RunTraining(WriteConfig("train.yaml", common + $"""
            do_train: true
            dataset: identity
            output_dir: {JsonSerializer.Serialize(PathOf(AdapterRun))}
            per_device_train_batch_size: {Records}
            learning_rate: 1.0e-2
            max_steps: 40
            save_steps: 100
            lr_scheduler_type: cosine
            """));
        TinyModelFixture.RunTraining(WriteConfig("predict.yaml", common + $"""
            do_train: false
            do_predict: true
            predict_with_generate: true
            do_sample: false
            max_new_tokens: 40
            eval_dataset: identity
            adapter_name_or_path: {JsonSerializer.Serialize(PathOf(AdapterRun))}
            per_device_eval_batch_size: 2
            output_dir: {JsonSerializer.Serialize(PathOf(PredictRun))}
            """));
    }

    private string WriteConfig(string name, string yaml)
    {
        string path = Path.Combine(Root, name);
        File.WriteAllText(path, yaml);
        return path;
    }
}
