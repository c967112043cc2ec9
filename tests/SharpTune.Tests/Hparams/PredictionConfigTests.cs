using SharpTune.Hparams;

namespace SharpTune.Tests.Hparams;

/// <summary>do_predict, predict_with_generate and LLaMA-Factory's generating arguments, on inline configs.</summary>
public sealed class PredictionConfigTests
{
    private const string Predict = "model_name_or_path: Qwen/Qwen2.5-0.5B\nadapter_name_or_path: saves/sft\nstage: sft\ndo_predict: true\n" +
        "finetuning_type: lora\neval_dataset: identity,alpaca_en_demo\ntemplate: qwen\noutput_dir: saves/predict\npredict_with_generate: true\n";

    private static SftConfig Parse(string yaml, params string[] overrides) => SftConfig.Parse(yaml, overrides, Path.GetTempPath());

    private static string Error(string yaml, params string[] overrides)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(yaml, overrides));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    [Fact]
    public void APredictConfigGetsLlamaFactorysSamplingDefaults()
    {
        var c = Parse(Predict + "per_device_eval_batch_size: 1\noverwrite_cache: true\npreprocessing_num_workers: 16\n");
        Assert.True(c.Training.DoPredict);
        Assert.True(c.Training.PredictWithGenerate);
        Assert.False(c.Training.DoTrain);
        Assert.Equal(["identity", "alpaca_en_demo"], c.Data.EvalDataset);
        Assert.Equal(1, c.Training.PerDeviceEvalBatchSize);
        var g = c.Generating;
        Assert.Equal((true, 0.95, 0.7, 50, 1024, 1.0, true), (g.DoSample, g.Temperature, g.TopP, g.TopK, g.MaxNewTokens, g.RepetitionPenalty, g.SkipSpecialTokens));
    }

    [Fact]
    public void GenerationKeysAreRead()
    {
        var g = Parse(Predict + "do_sample: false\ntemperature: 0.3\ntop_p: 0.9\ntop_k: 0\nmax_new_tokens: 64\nrepetition_penalty: 1.1\nskip_special_tokens: false\nnum_beams: 1\nlength_penalty: 1.0\nmax_length: 1024\n").Generating;
        Assert.Equal((false, 0.3, 0.9, 0, 64, 1.1, false), (g.DoSample, g.Temperature, g.TopP, g.TopK, g.MaxNewTokens, g.RepetitionPenalty, g.SkipSpecialTokens));
        Assert.Empty(Parse(Predict + "num_beams: 1\nlength_penalty: 1.0\nmax_length: 1024\n").Notes);
    }

    [Theory]
    [InlineData("top_p: 0", "top_p: must be in (0, 1], got 0 (line 10 of config)")]
    [InlineData("top_p: 1.5", "top_p: must be at most 1, got 1.5 (line 10 of config)")]
    [InlineData("max_new_tokens: 0", "max_new_tokens: must be at least 1, got 0 (line 10 of config)")]
    [InlineData("repetition_penalty: 0", "repetition_penalty: must be greater than 0, got 0 (line 10 of config)")]
    [InlineData("num_beams: 4", "num_beams is not supported: beam search is not available; predictions are greedy or sampled (line 10 of config)")]
    [InlineData("temperature: 0", "temperature: must be greater than 0 when sampling (do_sample: true); set do_sample: false for greedy decoding (line 10 of config)")]
    public void BadGenerationValuesNameTheKey(string line, string expected) => Assert.Equal(expected, Error(Predict + line + "\n"));

    [Fact]
    public void GreedyDecodingAcceptsTemperatureZero() => Assert.False(Parse(Predict + "do_sample: false\ntemperature: 0\n").Generating.DoSample);

    [Fact]
    public void BadCombinationsAreRefused()
    {
        Assert.Equal("do_predict: needs predict_with_generate: true to save model predictions (as LLaMA-Factory requires) (line 4 of config)",
            Error(Predict.Replace("predict_with_generate: true", "predict_with_generate: false")));
        Assert.Equal("do_predict: needs eval_dataset: predictions are generated for its prompts and compared with its answers (line 4 of config)",
            Error(Predict.Replace("eval_dataset: identity,alpaca_en_demo\n", "dataset: identity\n")));
        Assert.StartsWith("predict_with_generate: cannot be used while training (do_train: true)",
            Error(Predict + "do_train: true\ndataset: identity\n"));
        Assert.StartsWith("predict_with_generate: generation-based evaluation (do_eval with predict_with_generate) is not available",
            Error(Predict + "do_eval: true\n"));
        Assert.StartsWith("output_dir: required for prediction (do_predict: true)", Error(Predict.Replace("output_dir: saves/predict\n", "")));
        Assert.StartsWith("output_dir: required for evaluation (do_eval: true)",
            Error("model_name_or_path: m\ndo_eval: true\neval_dataset: identity\n"));
    }

    [Fact]
    public void TheBundledPredictExampleParses()
    {
        string path = Path.Combine(TestPaths.RepoRoot, "examples", "train_lora", "tiny_identity_lora_predict.yaml");
        var c = SftConfig.Parse(File.ReadAllText(path), workingDirectory: TestPaths.RepoRoot);
        Assert.True(c.Training.DoPredict && c.Training.PredictWithGenerate && !c.Training.DoTrain);
        Assert.Equal(["identity"], c.Data.EvalDataset);
        Assert.Equal(Path.Combine(TestPaths.RepoRoot, "demo", "tiny-identity-lora", "predict"), c.Training.OutputDir);
        Assert.False(c.Generating.DoSample);
        Assert.Empty(c.Notes);
    }
}
