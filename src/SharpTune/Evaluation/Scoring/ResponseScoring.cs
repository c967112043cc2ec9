using SharpTune.Data;
using SharpTune.Data.Cleaning;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Evaluation.Scoring;

/// <summary>One record of a file to score: where it is, and its prompt and response ids as the reward model reads them.</summary>
public sealed record ResponseToScore(string Location, int[] InputIds);

/// <summary>
/// What <c>sharptune score</c> reads: prompt/response records of a file (alpaca, sharegpt or OpenAI messages, the
/// format detected from the fields as <c>data inspect</c> detects it), each encoded as reward-model training encodes a
/// chosen response: the conversation through the template, the response and its eos, cut at cutoff_len by
/// LLaMA-Factory's rule (<see cref="SupervisedProcessor"/>).
/// </summary>
public static class ResponseScoring
{
    /// <exception cref="InvalidDataException">The file is unreadable, or a record is unusable (file, record and field named).</exception>
    public static IReadOnlyList<ResponseToScore> Read(string path, Tokenizer tokenizer, ChatTemplate template, int cutoffLen)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"input file {path} does not exist");
        var file = DatasetRecordFile.Read(path);
        var format = DatasetInspector.Detect(file);
        var processor = SupervisedProcessor.ForData(tokenizer, template, new DataArguments { CutoffLen = cutoffLen });
        var responses = new List<ResponseToScore>(file.Records.Count);
        foreach (var record in file.Records)
        {
            using var doc = record.Parse();
            try
            {
                var example = DatasetConverter.Convert(format.Entry, doc.RootElement);
                responses.Add(new ResponseToScore(record.Location, processor.Encode(example).InputIds));
            }
            catch (InvalidRecordException e)
            {
                throw new InvalidDataException($"{record.Location} ({format.Name}): {e.Message}");
            }
        }
        return responses;
    }
}
