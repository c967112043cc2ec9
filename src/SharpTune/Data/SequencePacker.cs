namespace SharpTune.Data;

/// <summary>
/// LLaMA-Factory's packing (<c>packing: true</c>, <c>PackedSupervisedDatasetProcessor</c> with its default
/// <c>neat_packing: false</c>): whole examples are concatenated into blocks of at most <c>cutoff_len</c> tokens,
/// filled greedily (<c>greedy_knapsack</c>: each block repeatedly takes the longest remaining example that still fits).
/// </summary>
/// <remarks>
/// Attention in a block is plain causal attention over the whole block, so a token also sees the earlier examples
/// of its block: the attention mask is 1 everywhere, as in LLaMA-Factory without neat_packing. Positions run on
/// through the block (the batch carries no position ids), whereas LLaMA-Factory restarts its position_ids at each
/// example. LLaMA-Factory pads every block to cutoff_len + 1 with attended padding that has no labels; here the
/// collator pads dynamically instead, which changes no loss value.
/// </remarks>
public static class SequencePacker
{
    public static List<SupervisedExample> Pack(IReadOnlyList<SupervisedExample> examples, int cutoffLen)
    {
        if (cutoffLen <= 0) throw new ArgumentException($"cutoff_len must be positive, got {cutoffLen}");
        // Examples by length; like LLaMA-Factory's length2indexes lists, the last one added is taken first.
        var byLength = new Dictionary<int, Stack<int>>();
        var lengths = new SortedSet<int>();
        for (int i = 0; i < examples.Count; i++)
        {
            int length = examples[i].Length;
            if (length > cutoffLen)
                throw new ArgumentException($"example {i} has {length} tokens, more than cutoff_len {cutoffLen}; it cannot be packed");
            if (length == 0) continue;
            if (!byLength.TryGetValue(length, out var stack)) byLength[length] = stack = new Stack<int>();
            stack.Push(i);
            lengths.Add(length);
        }

        var blocks = new List<SupervisedExample>();
        while (lengths.Count > 0)
        {
            var members = new List<SupervisedExample>();
            int remaining = cutoffLen;
            while (lengths.Count > 0 && lengths.Min <= remaining)
            {
                int length = lengths.GetViewBetween(lengths.Min, remaining).Max;
                var stack = byLength[length];
                members.Add(examples[stack.Pop()]);
                if (stack.Count == 0) lengths.Remove(length);
                remaining -= length;
            }
            blocks.Add(Concatenate(members));
        }
        return blocks;
    }

    private static SupervisedExample Concatenate(List<SupervisedExample> members)
    {
        int total = members.Sum(m => m.Length);
        var ids = new int[total];
        var labels = new int[total];
        var mask = new int[total];
        Array.Fill(mask, 1);
        int at = 0;
        foreach (var m in members)
        {
            m.InputIds.CopyTo(ids, at);
            m.Labels.CopyTo(labels, at);
            at += m.Length;
        }
        return new SupervisedExample(ids, mask, labels);
    }
}
