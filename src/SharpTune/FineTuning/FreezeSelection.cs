using System.Text.RegularExpressions;
using SharpTune.Hparams;

namespace SharpTune.FineTuning;

/// <summary>
/// LLaMA-Factory's freeze tuning (model/adapter.py, _setup_freeze_tuning): freeze_trainable_layers N &gt; 0 trains the
/// last N layers, N &lt; 0 the first |N|; in those layers, parameters whose name contains ".{i}.{module}" for a
/// freeze_trainable_modules entry ("all" = the whole layer) are trained; freeze_extra_modules entries are matched as
/// substrings of any parameter name, as LLaMA-Factory does (so "norm" also trains every layer's norms).
/// </summary>
public static partial class FreezeSelection
{
    public static HashSet<string> TrainableNames(IReadOnlyList<string> parameterNames, int numLayers, FinetuningArguments args)
    {
        int n = args.FreezeTrainableLayers;
        IEnumerable<int> layerIds = n > 0
            ? Enumerable.Range(Math.Max(0, numLayers - n), numLayers - Math.Max(0, numLayers - n))
            : Enumerable.Range(0, Math.Min(-n, numLayers));

        // The module names LLaMA-Factory accepts: the first component after ".0." (or ".1."), and for parameters
        // outside the layers the component before the last.
        var hiddenModules = new SortedSet<string>(StringComparer.Ordinal);
        var otherModules = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string name in parameterNames)
        {
            string? marker = name.Contains(".0.", StringComparison.Ordinal) ? ".0." : name.Contains(".1.", StringComparison.Ordinal) ? ".1." : null;
            if (marker is not null) hiddenModules.Add(name[(name.LastIndexOf(marker, StringComparison.Ordinal) + marker.Length)..].Split('.')[0]);
            if (!LayerIndex().IsMatch(name))
            {
                string[] parts = name.Split('.');
                otherModules.Add(parts[^2]);
            }
        }

        var patterns = new List<string>();
        foreach (string module in args.FreezeTrainableModules)
        {
            if (module != "all" && !hiddenModules.Contains(module))
                throw new ArgumentException($"freeze_trainable_modules: module '{module}' is not found, choose from {string.Join(", ", hiddenModules)}");
            foreach (int id in layerIds) patterns.Add($".{id}.{(module == "all" ? "" : module)}");
        }
        foreach (string module in args.FreezeExtraModules)
        {
            if (!otherModules.Contains(module))
                throw new ArgumentException($"freeze_extra_modules: module '{module}' is not found, choose from {string.Join(", ", otherModules)}");
            patterns.Add(module);
        }
        return parameterNames.Where(name => patterns.Any(p => name.Contains(p, StringComparison.Ordinal))).ToHashSet(StringComparer.Ordinal);
    }

    [GeneratedRegex(@"\.\d+\.")]
    private static partial Regex LayerIndex();
}
