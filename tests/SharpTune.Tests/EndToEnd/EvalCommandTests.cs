using System.Text.Json;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Evaluation;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.EndToEnd;

/// <summary>`sharptune eval CONFIG.yaml` as `llamafactory-cli eval`, on the model that answers B to everything.</summary>
[Collection(CliCollection.Name)]
public sealed class EvalCommandTests(BenchmarkTests.AlwaysBModel model) : IClassFixture<BenchmarkTests.AlwaysBModel>, IDisposable
{
    private readonly TempDir dir = new();

    public void Dispose() => dir.Dispose();

    private string WriteConfig(string saveDir) => WriteConfig(dir, model.Dir, saveDir);

    /// <summary>A ceval_validation task of two subjects (law: 2 questions, physics: 1) in batches of 2, on <paramref name="modelDir"/>.</summary>
    internal static string WriteConfig(TempDir dir, string modelDir, string saveDir)
    {
        string folder = dir.File(Path.Combine("evaluation", "ceval"));
        Directory.CreateDirectory(Path.Combine(folder, "val"));
        Directory.CreateDirectory(Path.Combine(folder, "dev"));
        File.WriteAllText(Path.Combine(folder, "mapping.json"), """{"law": {"name": "法学", "category": "Humanities"}, "physics": {"name": "大学物理", "category": "STEM"}}""");
        File.WriteAllText(Path.Combine(folder, "val", "law_val.csv"), "id,question,A,B,C,D,answer,explanation\n0,问一,甲,乙,丙,丁,B,\n1,问二,甲,乙,丙,丁,A,\n");
        File.WriteAllText(Path.Combine(folder, "val", "physics_val.csv"), "id,question,A,B,C,D,answer,explanation\n0,问三,甲,乙,丙,丁,B,\n");
        File.WriteAllText(Path.Combine(folder, "dev", "law_dev.csv"), "id,question,A,B,C,D,answer,explanation\n0,例,甲,乙,丙,丁,C,因为\n");
        File.WriteAllText(Path.Combine(folder, "dev", "physics_dev.csv"), "id,question,A,B,C,D,answer,explanation\n0,例,甲,乙,丙,丁,D,因为\n");
        string config = dir.File("eval.yaml");
        File.WriteAllText(config, $"""
            model_name_or_path: {JsonSerializer.Serialize(modelDir)}
            template: qwen
            task: ceval_validation
            task_dir: {JsonSerializer.Serialize(dir.File("evaluation"))}
            save_dir: {JsonSerializer.Serialize(saveDir)}
            lang: zh
            n_shot: 1
            batch_size: 2
            """);
        return config;
    }

    [Fact]
    public void EvalPrintsCategoryScoresPerSubjectAccuracyAndSavesLlamaFactorysFiles()
    {
        string saveDir = dir.File("results");
        string config = WriteConfig(saveDir);

        var r = CliRunner.Run("eval", config, "--n_shot", "0");

        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("        Average: 66.67\n           STEM: 100.00\n     Humanities: 50.00\n", r.Stdout.ReplaceLineEndings("\n"));
        Assert.Contains("ceval validation: 2 subjects, 0-shot, lang zh", r.Stderr);
        Assert.Contains("[1/2] law (Humanities): 1/2 correct", r.Stderr);
        Assert.Equal(r.Stdout.ReplaceLineEndings("\n").TrimEnd('\n'), File.ReadAllText(Path.Combine(saveDir, "results.log")));
        using var results = JsonDocument.Parse(File.ReadAllText(Path.Combine(saveDir, "results.json")));
        Assert.Equal(["B", "B"], results.RootElement.GetProperty("law").EnumerateObject().Select(p => p.Value.GetString()));

        var again = CliRunner.Run("eval", config);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("save_dir: ", again.Stderr);
        Assert.Contains("already exists, use another one", again.Stderr);
    }

    [Fact]
    public void AConfigWithoutATaskOrWithAMissingTaskDirIsRefused()
    {
        string config = WriteConfig(dir.File("unused"));
        Assert.Contains("task: required for eval", CliRunner.Run("eval", config, "task=null").Stderr);
        Assert.Contains("task_dir: ", CliRunner.Run("eval", config, "task_dir=" + dir.File("nowhere")).Stderr);
        Assert.Contains(Path.Combine("mmlu", "mapping.json") + "' does not exist", CliRunner.Run("eval", config, "task=mmlu_test").Stderr);
    }
}
