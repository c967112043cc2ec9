using SharpTune.Templates;
using SharpTune.Tests.Cli;
using SharpTune.Tokenization;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// A template whose markers are not single tokens of the model's tokenizer (llama3 on the tiny model's Qwen2.5
/// tokenizer: &lt;|eot_id|&gt; would be split into plain text) is refused by every command that uses a template.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class TemplateTokenCheckTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private string Refusal => $"error: {tiny.ModelDir}: the llama3 template's stop word '<|eot_id|>' is not a single token of this model's tokenizer (it would become plain text); use the model's own template (template: auto)";

    private void AssertRefused(CliResult r)
    {
        Assert.Equal(1, r.ExitCode);
        Assert.Equal(Refusal, r.Stderr.TrimEnd().Split('\n')[^1]);
    }

    [Fact]
    public void TheSharedCheckNamesTheFirstMarkerThatIsNotOneToken()
    {
        var tokenizer = Tokenizer.FromDirectory(TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"));
        ChatTemplates.RequireSingleTokens(ChatTemplates.Get("qwen"), tokenizer, "qwen-dir");
        var e = Assert.Throws<InvalidDataException>(() => ChatTemplates.RequireSingleTokens(ChatTemplates.Get("llama3"), tokenizer, "qwen-dir"));
        Assert.StartsWith("qwen-dir: the llama3 template's stop word '<|eot_id|>' is not a single token", e.Message);
        Assert.Contains(("<|start_header_id|>", "role token"), ChatTemplates.Get("llama3").Markers());
        Assert.Contains(("<|im_start|>", "role token"), ChatTemplates.Get("qwen").Markers());
    }

    [Fact]
    public void TrainRefuses()
    {
        string output = tiny.PathFor("llama3-train");
        AssertRefused(CliRunner.Run("train", tiny.WriteConfig("llama3-train", output, ("template", "llama3"))));
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void PredictRefuses()
    {
        string output = tiny.PathFor("llama3-predict");
        string config = tiny.WriteConfig("llama3-predict", output, ("template", "llama3"), ("do_train", false), ("dataset", null),
            ("eval_dataset", "identity"), ("do_predict", true), ("predict_with_generate", true), ("max_new_tokens", 4));
        AssertRefused(CliRunner.Run("train", config));
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void ChatRefuses() => AssertRefused(CliRunner.RunWithInput("hello\n", "chat", "--model", tiny.ModelDir, "--template", "llama3"));

    [Fact]
    public async Task ApiRefuses()
    {
        // The refusal comes while the model is loaded, before the server listens; a server that started would not return.
        var run = Task.Run(() => CliRunner.Run("api", "--model", tiny.ModelDir, "--template", "llama3", "--port", "0"));
        Assert.True(await Task.WhenAny(run, Task.Delay(TimeSpan.FromMinutes(2))) == run, "the api command started serving instead of refusing the template");
        AssertRefused(await run);
    }

    [Fact]
    public void CompareRefuses()
    {
        string questions = tiny.PathFor("llama3-questions.txt");
        File.WriteAllText(questions, "Who are you?\n");
        string output = tiny.PathFor("llama3-compare");
        AssertRefused(CliRunner.Run("compare", "--model", tiny.ModelDir, "--adapter", TestPaths.Fixtures("lora"), "--questions", questions,
            "--template", "llama3", "--out", output));
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void ExportRefuses()
    {
        string export = tiny.PathFor("llama3-export");
        string config = tiny.PathFor("llama3-export.yaml");
        File.WriteAllText(config, $"model_name_or_path: {tiny.ModelDir}\ntemplate: llama3\nfinetuning_type: lora\nexport_dir: {export}\n");
        AssertRefused(CliRunner.Run("export", config));
        Assert.False(Directory.Exists(export));
    }
}
