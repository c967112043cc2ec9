using SharpTune.Data;
using SharpTune.Training.Model;
using SharpTune.Training.Ppo;

namespace SharpTune.Inference;

/// <summary>
/// The responses of one PPO batch, as LLaMA-Factory's CustomPPOTrainer.get_inputs makes them: the policy (the
/// training decoder with its tuners on) generates for the left-padded prompts (<see cref="BatchGenerator"/>), and
/// each row of what transformers' generate returns is cut back to a query and a response.
/// </summary>
public static class PpoRollout
{
    /// <param name="padTokenId">The tokenizer's pad token: the left padding, and what generate writes after a finished row.</param>
    /// <param name="eosTokenId">The tokenizer's eos token; when it is the pad token, the eos that ended a response is kept.</param>
    public static PpoSample[] Generate(DecoderModel policy, IReadOnlyList<GenerationExample> prompts, GenerationOptions options, int padTokenId, int eosTokenId)
    {
        if (options.MaxNewTokens < 1) throw new ArgumentException($"max_new_tokens must be ≥ 1 for PPO's responses, got {options.MaxNewTokens}");
        var results = new BatchGenerator(policy).Generate([.. prompts.Select(p => (IReadOnlyList<int>)p.PromptIds)], options, padTokenId: padTokenId);
        return Trim([.. prompts.Select(p => p.PromptIds)], results, padTokenId, eosTokenId);
    }

    /// <summary>
    /// get_inputs' cut of each generated row: the query without its leading pad tokens; the response up to its last
    /// token that is not the pad token (one more, the eos, when eos is the pad token), and at least one token. A row
    /// is the generated ids and the stop token, padded with the pad token to the batch's longest row (transformers
    /// pads finished rows so), which is why the response can end in a pad token and never runs past that width.
    /// </summary>
    public static PpoSample[] Trim(IReadOnlyList<int[]> prompts, IReadOnlyList<GenerationResult> results, int padTokenId, int eosTokenId)
    {
        if (prompts.Count != results.Count) throw new ArgumentException($"{prompts.Count} prompts but {results.Count} generation results");
        var rows = results.Select(r => r.StopTokenId is int stop ? [.. r.NewIds, stop] : r.NewIds).ToArray();
        int width = rows.Max(r => r.Length);
        var samples = new PpoSample[rows.Length];
        for (int i = 0; i < rows.Length; i++)
        {
            int queryStart = Array.FindIndex(prompts[i], id => id != padTokenId);
            if (queryStart < 0) throw new ArgumentException($"prompt {i} holds only pad tokens");
            int last = Array.FindLastIndex(rows[i], id => id != padTokenId);
            int length = Math.Min(width, last < 0 ? 1 : eosTokenId == padTokenId ? last + 2 : last + 1);
            var row = rows[i];
            samples[i] = new PpoSample(prompts[i][queryStart..], [.. Enumerable.Range(0, length).Select(j => j < row.Length ? row[j] : padTokenId)]);
        }
        return samples;
    }
}
