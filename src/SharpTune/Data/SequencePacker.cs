namespace SharpTune.Data;

/// <summary>
/// LLaMA-Factory's packing (<c>packing: true</c>, <c>PackedSupervisedDatasetProcessor</c>): whole examples are
/// concatenated into blocks of at most <c>cutoff_len</c> tokens, filled greedily (<c>greedy_knapsack</c>: each block
/// repeatedly takes the longest remaining example that still fits). Each example's position ids restart at 0, as
/// LLaMA-Factory's do.
/// </summary>
/// <remarks>
/// Without neat_packing the attention mask is 1 everywhere, so a token also sees the earlier examples of its block
/// (plain causal attention over the block, as transformers' eager and sdpa attention read LLaMA-Factory's batch).
/// With neat_packing the mask numbers the examples 1, 2, 3, … and a token attends only within its own example, at its
/// own positions: the loss and gradients of each example unpacked. LLaMA-Factory pads every block to cutoff_len + 1
/// with padding that has no labels; here the collator pads dynamically instead, which changes no loss value.
/// </remarks>
public static class SequencePacker
{
    public static List<SupervisedExample> Pack(IReadOnlyList<SupervisedExample> examples, int cutoffLen, bool neat = false)
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
            blocks.Add(Concatenate(members, neat));
        }
        return blocks;
    }

    private static SupervisedExample Concatenate(List<SupervisedExample> members, bool neat)
    {
        int total = members.Sum(m => m.Length);
        var ids = new int[total];
        var labels = new int[total];
        var mask = new int[total];
        var positions = new int[total];
        int at = 0;
        for (int e = 0; e < members.Count; e++)
        {
            var m = members[e];
            m.InputIds.CopyTo(ids, at);
            m.Labels.CopyTo(labels, at);
            Array.Fill(mask, neat ? e + 1 : 1, at, m.Length);
            for (int i = 0; i < m.Length; i++) positions[at + i] = i;
            at += m.Length;
        }
        return new SupervisedExample(ids, mask, labels) { PositionIds = positions };
    }
}
