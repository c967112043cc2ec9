using System.Text.Json;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tokenization;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;

namespace SharpTune.Tests.Evaluation;

/// <summary>
/// `sharptune score`: records encoded as reward-model training encodes a response, scored through the generation
/// forward, against the training forward's scores (the path the reward_model fixture checks).
/// </summary>
[Collection(CliCollection.Name)]
public sealed class ScoreCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private const string Records = """
        [
          {"instruction": "Who are you?", "input": "", "output": "I am an assistant."},
          {"instruction": "Who are you?", "input": "", "output": "No."},
          {"conversations_are_not_here": true, "instruction": "Add 2 and 3.", "output": "5"}
        ]
        """;

    private string WriteHead(string name)
    {
        var config = ModelConfig.Load(Path.Combine(tiny.ModelDir, "config.json"));
        string dir = tiny.PathFor(name);
        Directory.CreateDirectory(dir);
        ValueHead.CreateNew(config.HiddenSize, new SeededRandom(5)).Save(dir);
        return Path.Combine(dir, ValueHead.FileName);
    }

    [Fact]
    public void Scores_each_record_as_the_training_forward_scores_it()
    {
        string head = WriteHead("score-head");
        string input = tiny.PathFor("score-records.json");
        File.WriteAllText(input, Records);
        string output = tiny.PathFor("scores.jsonl");
        var result = CliRunner.Run("score", "--model", tiny.ModelDir, "--value-head", head, "--input", input, "--template", "qwen",
            "--batch-size", "2", "--out", output);
        Assert.True(result.ExitCode == 0, result.Stderr);
        var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(3, lines.Count);

        var tokenizer = Tokenizer.FromDirectory(tiny.ModelDir);
        var template = ChatTemplates.ForModel("qwen", tiny.ModelDir, tokenizer);
        var processor = SupervisedProcessor.ForData(tokenizer, template, new DataArguments { CutoffLen = 2048 });
        var entry = new DatasetEntry { Name = "records", FileName = input };
        using var records = JsonDocument.Parse(Records);
        var examples = records.RootElement.EnumerateArray().Select(r => processor.Encode(DatasetConverter.Convert(entry, r))).ToList();
        using var decoder = DecoderModel.Load(tiny.ModelDir, gradientCheckpointing: false);
        var batch = SupervisedCollator.Collate(examples, padTokenId: 0);
        var expected = PairwiseRewardLoss.SequenceScores(ValueHead.Load(head, decoder.Config.HiddenSize), batch, decoder.FinalHidden(batch));
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(examples[i].InputIds.Length, lines[i].GetProperty("tokens").GetInt32());
            Assert.Equal(expected[i], lines[i].GetProperty("score").GetDouble(), 4);
        }
        Assert.NotEqual(lines[0].GetProperty("score").GetDouble(), lines[1].GetProperty("score").GetDouble());
        Assert.Contains("scored 3 records", result.Stderr);
    }

    [Fact]
    public void A_record_without_a_response_is_named_with_its_file_and_field()
    {
        string head = WriteHead("score-head-2");
        string input = tiny.PathFor("score-bad.jsonl");
        File.WriteAllText(input, "{\"instruction\": \"Hi\", \"output\": \"Hello\"}\n{\"instruction\": \"Hi\", \"output\": 3}\n");
        var result = CliRunner.Run("score", "--model", tiny.ModelDir, "--value-head", head, "--input", input);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("score-bad.jsonl", result.Stderr);
        Assert.Contains("line 2", result.Stderr);
        Assert.Contains("'output'", result.Stderr);
    }
}
