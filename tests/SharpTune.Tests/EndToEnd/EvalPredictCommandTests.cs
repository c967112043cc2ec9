using System.Text.Json;
using SharpTune.Data;
using SharpTune.Evaluation.Metrics;
using SharpTune.Evaluation.Prediction;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tests.Cli;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// `sharptune train` with do_eval alone and with do_predict + predict_with_generate, on the tiny model with an adapter
/// trained by the fixture: the files LLaMA-Factory writes, with values recomputed here another way.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class EvalPredictCommandTests : IClassFixture<TinyModelFixture>
{
    private readonly TinyModelFixture _tiny;
    private readonly string _adapter;

    public EvalPredictCommandTests(TinyModelFixture tiny)
    {
        _tiny = tiny;
        _adapter = tiny.PathFor("adapter");
        if (!File.Exists(Path.Combine(_adapter, "adapter_model.safetensors")))
            TinyModelFixture.Train(tiny.WriteConfig("adapter", _adapter, ("save_steps", 100)));
    }

    /// <summary>A config that only evaluates or predicts: no dataset, no training keys.</summary>
    private string EvalConfig(string name, string outputDir, params (string Key, object? Value)[] keys) =>
        _tiny.WriteConfig(name, outputDir, [
            ("do_train", false), ("dataset", null), ("eval_dataset", "identity"), ("adapter_name_or_path", _adapter),
            ("max_samples", 5), ("per_device_eval_batch_size", 2), .. keys]);

    [Fact]
    public void EvalOnlyWritesTheLossOfTheAdaptedModelAndItsPerplexity()
    {
        string output = _tiny.PathFor("eval-only");
        var r = TinyModelFixture.Train(EvalConfig("eval-only", output, ("do_eval", true)));

        // The same examples through the inference model (base + adapter unmerged) and the plain full-logits loss,
        // batched as transformers' evaluation loop does: 2, 2, 1 examples, each batch's mean weighted by its size.
        var data = new DataArguments { EvalDataset = ["identity"], DatasetDir = TinyModelFixture.BundledData, CutoffLen = 64, MaxSamples = 5, Template = "qwen" };
        var examples = SupervisedDatasets.Load(data, Tokenizer.FromDirectory(_tiny.ModelDir), ChatTemplates.ForModel("qwen", _tiny.ModelDir), 42).Eval;
        Assert.Equal(5, examples.Count);
        using var model = DecoderModel.LoadForGeneration(_tiny.ModelDir, adapterDirectories: [_adapter]);
        double weighted = 0;
        foreach (var batch in examples.Chunk(2))
        {
            int width = batch.Max(e => e.Length);
            int[][] ids = batch.Select(e => e.InputIds.Concat(Enumerable.Repeat(0, width - e.Length)).ToArray()).ToArray();
            int[][] mask = batch.Select(e => Enumerable.Repeat(1, e.Length).Concat(Enumerable.Repeat(0, width - e.Length)).ToArray()).ToArray();
            int[][] labels = batch.Select(e => e.Labels.Concat(Enumerable.Repeat(-100, width - e.Length)).ToArray()).ToArray();
            weighted += CausalLmLoss.Compute(model.Evaluate(ids, mask).Logits, labels).Loss * batch.Length;
        }
        double expected = weighted / examples.Count;

        using var results = TinyModelFixture.ReadJson(Path.Combine(output, "eval_results.json"));
        var root = results.RootElement;
        double evalLoss = root.GetProperty("eval_loss").GetDouble();
        Assert.Equal(expected, evalLoss, 4e-5 * expected);
        Assert.Equal(Math.Exp(evalLoss), root.GetProperty("perplexity").GetDouble(), 1e-9 * Math.Exp(evalLoss));
        Assert.True(root.GetProperty("eval_runtime").GetDouble() > 0);
        Assert.Equal(5 / root.GetProperty("eval_runtime").GetDouble(), root.GetProperty("eval_samples_per_second").GetDouble(), 0.05 * 5 / root.GetProperty("eval_runtime").GetDouble() + 0.002);
        Assert.True(root.GetProperty("eval_steps_per_second").GetDouble() > 0);
        Assert.Equal(["eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "perplexity"],
            root.EnumerateObject().Select(p => p.Name));
        using var all = TinyModelFixture.ReadJson(Path.Combine(output, "all_results.json"));
        Assert.Equal(evalLoss, all.RootElement.GetProperty("eval_loss").GetDouble());
        Assert.Contains("eval_loss = ", r.Stdout);
        Assert.False(File.Exists(Path.Combine(output, "adapter_model.safetensors")), "evaluation must not save a model");
    }

    [Fact]
    public void PredictWritesLlamaFactoryPredictionsEqualToGreedyGeneration()
    {
        string output = _tiny.PathFor("predict");
        var r = TinyModelFixture.Train(EvalConfig("predict", output,
            ("do_predict", true), ("predict_with_generate", true), ("do_sample", false), ("max_new_tokens", 6)));

        string[] lines = File.ReadAllLines(Path.Combine(output, PredictionRun.PredictionsFileName));
        Assert.Equal(5, lines.Length);
        var records = JsonSerializer.Deserialize<List<Dictionary<string, JsonElement>>>("[" + string.Join(",", lines) + "]")!;

        var tokenizer = Tokenizer.FromDirectory(_tiny.ModelDir);
        var template = ChatTemplates.ForModel("qwen", _tiny.ModelDir);
        using var model = DecoderModel.LoadForGeneration(_tiny.ModelDir, adapterDirectories: [_adapter]);
        var options = new GenerationOptions { MaxNewTokens = 6, StopTokenIds = PredictionRun.StopTokenIds(tokenizer, template, _tiny.ModelDir) };
        string[] questions = ["hi", "hello", "Who are you?", "What is your name?", "Do you have a name?"];
        string[] answers = JsonDocument.Parse(File.ReadAllText(Path.Combine(TinyModelFixture.BundledData, "identity.json"))).RootElement
            .EnumerateArray().Take(5).Select(e => e.GetProperty("output").GetString()!).ToArray();
        long generated = 0;
        var predicted = new List<string>();
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(["prompt", "predict", "label"], records[i].Keys);
            string prompt = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
                $"<|im_start|>user\n{questions[i]}<|im_end|>\n<|im_start|>assistant\n";
            Assert.Equal(prompt, records[i]["prompt"].GetString());
            // The label is the answer slot decoded without special tokens: the text and the newline after <|im_end|>.
            Assert.Equal(answers[i] + "\n", records[i]["label"].GetString());

            var alone = new Generator(model).Generate(tokenizer.Encode(prompt), options);
            Assert.Equal(tokenizer.Decode(alone.NewIds, skipSpecialTokens: true), records[i]["predict"].GetString());
            predicted.Add(records[i]["predict"].GetString()!);
            generated += alone.NewIds.Length + (alone.StopTokenId is null ? 0 : 1);
        }

        using var results = TinyModelFixture.ReadJson(Path.Combine(output, "predict_results.json"));
        var root = results.RootElement;
        Assert.Equal(generated, root.GetProperty("predict_generated_tokens").GetInt64());
        var scores = GenerationMetrics.Compute(predicted, answers.Select(a => a + "\n").ToList());
        foreach (string key in new[] { "bleu-4", "rouge-1", "rouge-2", "rouge-l" })
            Assert.Equal(scores[key], root.GetProperty("predict_" + key).GetDouble());
        Assert.Equal(["predict_bleu-4", "predict_generated_tokens", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l", "predict_runtime",
            "predict_samples_per_second", "predict_steps_per_second", "predict_tokens_per_second"], root.EnumerateObject().Select(p => p.Name));
        double runtime = root.GetProperty("predict_runtime").GetDouble();
        Assert.True(runtime > 0);
        Assert.Equal(generated / runtime, root.GetProperty("predict_tokens_per_second").GetDouble(), 0.05 * generated / runtime + 0.002);
        Assert.True(root.GetProperty("predict_samples_per_second").GetDouble() > 0);
        Assert.True(root.GetProperty("predict_steps_per_second").GetDouble() > 0);
        using var all = TinyModelFixture.ReadJson(Path.Combine(output, "all_results.json"));
        Assert.Equal(runtime, all.RootElement.GetProperty("predict_runtime").GetDouble());
        Assert.Contains("[predict 5/5 examples", r.Stderr);
        Assert.Contains("predict_runtime = ", r.Stdout);
    }

    [Fact]
    public void SkipSpecialTokensFalseKeepsTheStopTokenAndTheLabelsSpecialTokens()
    {
        string output = _tiny.PathFor("predict-special");
        TinyModelFixture.Train(EvalConfig("predict-special", output, ("max_samples", 2),
            ("do_predict", true), ("predict_with_generate", true), ("do_sample", false), ("max_new_tokens", 40), ("skip_special_tokens", false)));

        var first = JsonDocument.Parse(File.ReadAllLines(Path.Combine(output, PredictionRun.PredictionsFileName))[0]).RootElement;
        Assert.Equal("Hello! I am TuneBot, an AI assistant developed by SharpTune. How can I assist you today?<|im_end|>\n", first.GetProperty("label").GetString());
        string predict = first.GetProperty("predict").GetString()!;
        // Six optimizer steps do not teach the tiny model to stop; when it does stop, the stop token is kept.
        Assert.True(!predict.Contains("<|im_end|>") || predict.EndsWith("<|im_end|>", StringComparison.Ordinal), predict);
    }

    [Theory]
    [InlineData("do_predict: needs predict_with_generate: true to save model predictions (as LLaMA-Factory requires)", "do_predict", true)]
    [InlineData("do_predict: needs eval_dataset: predictions are generated for its prompts and compared with its answers", "eval_dataset", null)]
    [InlineData("predict_with_generate: cannot be used while training (do_train: true); predict with the trained adapter in a separate run", "do_train", true)]
    [InlineData("output_dir: required for prediction (do_predict: true): the results are written there", "output_dir", null)]
    public void BadPredictCombinationsAreRefusedByKey(string expected, string key, object? value)
    {
        var keys = new List<(string, object?)> { ("do_predict", true), ("predict_with_generate", true), ("dataset", "identity"), (key, value) };
        if (key == "do_predict") keys[1] = ("predict_with_generate", false);
        string config = EvalConfig("bad-" + key, _tiny.PathFor("bad-" + key), [.. keys]);

        var r = CliRunner.Run(["train", config]);

        Assert.NotEqual(0, r.ExitCode);
        Assert.StartsWith(expected, r.Stderr.Trim().Split('\n')[^1].Replace("error: ", ""));
    }
}
