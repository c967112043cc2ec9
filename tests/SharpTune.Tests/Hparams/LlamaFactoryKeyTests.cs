using SharpTune.Hparams;

namespace SharpTune.Tests.Hparams;

/// <summary>
/// Every key LLaMA-Factory accepts (tests/fixtures/llamafactory/hparam_names.txt, listed from its hparams dataclasses
/// and transformers' Seq2SeqTrainingArguments) is known to SharpTune: supported, ignored with a note, or refused with
/// the feature that is missing.
/// </summary>
public sealed class LlamaFactoryKeyTests
{
    private const string Model = "model_name_or_path: Qwen/Qwen2.5-0.5B\n";

    private static readonly string[] HparamNames = File.ReadAllLines(TestPaths.Fixtures("llamafactory", "hparam_names.txt"))
        .Where(line => line.Length > 0 && !line.StartsWith('#'))
        .ToArray();

    private static SftConfig Parse(string yaml) => SftConfig.Parse(yaml, [], Path.GetTempPath());

    private static string Error(string yaml) => Assert.Throws<ConfigException>(() => Parse(yaml)).Message;

    [Fact]
    public void EveryLlamaFactoryHparamIsAKnownKey()
    {
        Assert.True(HparamNames.Length > 350, $"the list holds {HparamNames.Length} names");
        var unknown = HparamNames.Where(name => !ConfigKeys.All.ContainsKey(name)).ToList();
        Assert.Empty(unknown);
    }

    [Fact]
    public void NoLlamaFactoryHparamIsReportedUnknown()
    {
        // Through the parser, with a value of each kind, so no key reaches the "unknown key" branch.
        foreach (string name in HparamNames)
        {
            foreach (string value in new[] { "true", "1", "x" })
            {
                try
                {
                    Parse(Model + $"{name}: {value}\n");
                }
                catch (ConfigException e)
                {
                    Assert.False(e.Message.StartsWith("unknown key", StringComparison.Ordinal), e.Message);
                }
            }
        }
    }

    [Fact]
    public void EveryExampleConfigKeyIsKnown()
    {
        string examples = TestPaths.Fixtures("llamafactory", "examples");
        var files = Directory.GetFiles(examples, "*.yaml", SearchOption.AllDirectories);
        Assert.NotEmpty(files);
        foreach (string file in files)
        {
            foreach (string line in File.ReadAllLines(file))
            {
                int colon = line.IndexOf(':');
                if (line.Length == 0 || char.IsWhiteSpace(line[0]) || line[0] == '#' || colon <= 0) continue;
                string key = line[..colon];
                Assert.True(ConfigKeys.All.ContainsKey(key), $"{Path.GetRelativePath(examples, file)}: '{key}' is unknown");
            }
        }
    }

    [Theory]
    [InlineData("stage: dpo\npref_beta: 0.1\npref_loss: sigmoid\n", "dpo")]
    [InlineData("stage: kto\nkto_chosen_weight: 1.0\n", "kto")]
    [InlineData("stage: rm\n", "rm")]
    [InlineData("reward_model: saves/rm\nstage: ppo\ndo_train: true\ndataset: identity\noutput_dir: out\n", "ppo")]
    public void EveryLlamaFactoryStageParses(string yaml, string stage) => Assert.Equal(stage, Parse(Model + yaml).Finetuning.Stage);

    [Fact]
    public void TheStageIsCheckedBeforeUnknownKeys() =>
        Assert.Equal("stage: expected one of sft, pt, rm, ppo, dpo, kto, got 'dop' (line 3 of config)", Error(Model + "pref_bta: 0.1\nstage: dop\n"));

    [Theory]
    [InlineData("finetuning_type: oft", "finetuning_type 'oft' is not supported yet (supported: lora, full, freeze, ia3, bitfit, adapter, prompt_tuning, p_tuning, prefix_tuning; planned: the PEFT family) (line 2 of config)")]
    [InlineData("use_asft_loss: true", "use_asft_loss is not supported: the ASFT loss is not available (line 2 of config)")]
    [InlineData("use_eaft_loss: true", "use_eaft_loss is not supported: the EAFT loss is not available (line 2 of config)")]
    [InlineData("use_galore: true", "use_galore is not supported: GaLore is not available (line 2 of config)")]
    [InlineData("fp8: true", "fp8 is not supported: FP8 training is not available (line 2 of config)")]
    public void UnsupportedFeaturesNameTheFeature(string yaml, string message) => Assert.Equal(message, Error(Model + yaml));

    [Fact]
    public void SettingsOfAnOffFeatureAddNotesNamingIt()
    {
        var c = Parse(Model + "pref_beta: 0.1\ngalore_rank: 16\noft_rank: 8\nhf_hub_token: hf_x\n");
        Assert.Equal(
        [
            "galore_rank is ignored: it only applies with use_galore: GaLore is not available",
            "oft_rank is ignored: it only applies with finetuning_type oft: OFT is not available yet (planned: the PEFT family)",
            "hf_hub_token is ignored: SharpTune downloads into the Hugging Face cache of HF_HUB_CACHE or HF_HOME with the token of HF_TOKEN or the token file, as huggingface_hub does",
            "pref_beta is ignored: it only applies to stage dpo, kto, not stage sft",
        ], c.Notes);
    }

    [Fact]
    public void DistributedTrainingKeysAreNoOpsWithANote()
    {
        var c = Parse(Model + "deepspeed: examples/deepspeed/ds_z3_config.json\nfsdp: full_shard auto_wrap\nfsdp_config: {min_num_params: 1}\nddp_backend: nccl\n");
        Assert.Equal(
        [
            "deepspeed is ignored: DeepSpeed ZeRO would shard the optimizer state, gradients and weights across GPU processes; SharpTune trains on CPUs, each data-parallel process (mpirun, docs/distributed.md) holding the whole model",
            "fsdp is ignored: FSDP would shard the parameters, gradients and optimizer state across GPU processes; SharpTune trains on CPUs, each data-parallel process (mpirun, docs/distributed.md) holding the whole model",
            "fsdp_config is ignored: it configures FSDP, which would shard the model across GPU processes; SharpTune trains on CPUs, each data-parallel process (mpirun, docs/distributed.md) holding the whole model",
            "ddp_backend is ignored: SharpTune's data-parallel processes communicate through Open MPI (docs/distributed.md)",
        ], c.Notes);
    }

    [Theory]
    [InlineData("use_asft_los: true", "use_asft_loss")]
    [InlineData("pref_bta: 0.1", "pref_beta")]
    [InlineData("rewrd_model: x", "reward_model")]
    public void TyposOfNewKeysSuggestThem(string yaml, string suggestion) =>
        Assert.Equal($"unknown key '{yaml[..yaml.IndexOf(':')]}' (did you mean '{suggestion}'?) (line 2 of config)", Error(Model + yaml));
}
