using System.Reflection;
using System.Reflection.Emit;
using System.Text.RegularExpressions;

namespace SharpTune.Tests.Repository;

/// <summary>
/// The layer rule of docs/architecture.md checked on compiled code: the layers are the rows of the doc's first table,
/// bottom-up, each owning the namespaces of the folders it names; a type may use types of its own layer and of the
/// layers listed before it. "Uses" means every type a type's compiled code names: base type, interfaces, generic
/// constraints, field types, method signatures and locals, and every type, method and field its method bodies reference.
/// </summary>
public static partial class LayerRule
{
    public sealed record Layer(int Rank, string Name, IReadOnlyList<string> Namespaces);

    /// <summary>One type using a type of another layer.</summary>
    public sealed record LayerUse(Type User, Layer UserLayer, Type Used, Layer UsedLayer)
    {
        public override string ToString() =>
            $"{User.FullName} ({UserLayer.Name}) uses {Used.FullName} ({UsedLayer.Name})" + (UsedLayer.Rank > UserLayer.Rank ? ", a layer above it" : "");
    }

    /// <summary>
    /// The layers of the doc's first table: a row's backticked folders under src/ become namespaces
    /// (<c>src/SharpTune/Data/Cleaning/</c> → <c>SharpTune.Data.Cleaning</c>, <c>src/SharpTune.Api/</c> → <c>SharpTune.Api</c>);
    /// folders outside src/ (the benchmark program) are not in the checked assemblies.
    /// </summary>
    public static IReadOnlyList<Layer> FromArchitectureTable(string markdown)
    {
        var layers = new List<Layer>();
        bool inTable = false;
        foreach (string line in markdown.Split('\n'))
        {
            if (!line.StartsWith('|'))
            {
                if (inTable) break;
                continue;
            }
            string[] cells = line.Split('|');
            if (!inTable)
            {
                inTable = cells[1].Trim() == "layer";
                continue;
            }
            if (cells[1].Trim().StartsWith("---", StringComparison.Ordinal)) continue;
            var namespaces = FolderPattern().Matches(cells[2])
                .Select(m => m.Groups[1].Value.TrimEnd('/').Replace('/', '.'))
                .ToList();
            if (namespaces.Count == 0) continue;
            layers.Add(new Layer(layers.Count, cells[1].Trim(), namespaces));
        }
        return layers;
    }

    /// <summary>The layer owning a namespace (its longest matching folder); null for namespaces outside SharpTune.</summary>
    public static Layer? LayerOf(string? ns, IReadOnlyList<Layer> layers)
    {
        if (ns is null || !(ns == "SharpTune" || ns.StartsWith("SharpTune.", StringComparison.Ordinal))) return null;
        Layer? best = null;
        int bestLength = -1;
        foreach (var layer in layers)
            foreach (string owned in layer.Namespaces)
                if ((ns == owned || ns.StartsWith(owned + ".", StringComparison.Ordinal)) && owned.Length > bestLength)
                    (best, bestLength) = (layer, owned.Length);
        return best ?? throw new InvalidOperationException(
            $"namespace {ns} belongs to no layer of docs/architecture.md's table: add its folder to a row");
    }

    /// <summary>Every use of a type of a higher layer.</summary>
    public static List<LayerUse> Violations(IEnumerable<Type> types, IReadOnlyList<Layer> layers) =>
        CrossLayerUses(types, layers).Where(u => u.UsedLayer.Rank > u.UserLayer.Rank).ToList();

    /// <summary>Every use of a type of another layer, up or down.</summary>
    public static IEnumerable<LayerUse> CrossLayerUses(IEnumerable<Type> types, IReadOnlyList<Layer> layers)
    {
        foreach (var type in types)
        {
            if (LayerOf(type.Namespace, layers) is not { } userLayer) continue;
            foreach (var used in UsedTypes(type))
                if (LayerOf(used.Namespace, layers) is { } usedLayer && usedLayer.Rank != userLayer.Rank)
                    yield return new LayerUse(type, userLayer, used, usedLayer);
        }
    }

    /// <summary>The types a type's compiled code names (generic instantiations, arrays and references unwrapped).</summary>
    public static HashSet<Type> UsedTypes(Type type)
    {
        var used = new HashSet<Type>();
        if (type.BaseType is { } baseType) Add(used, baseType);
        foreach (var face in type.GetInterfaces()) Add(used, face);
        foreach (var parameter in type.IsGenericTypeDefinition ? type.GetGenericArguments() : [])
            foreach (var constraint in parameter.GetGenericParameterConstraints()) Add(used, constraint);
        const BindingFlags declared = BindingFlags.DeclaredOnly | BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;
        foreach (var field in type.GetFields(declared)) Add(used, field.FieldType);
        foreach (var method in type.GetMethods(declared).Cast<MethodBase>().Concat(type.GetConstructors(declared)))
        {
            if (method is MethodInfo info) Add(used, info.ReturnType);
            foreach (var parameter in method.GetParameters()) Add(used, parameter.ParameterType);
            if (method.GetMethodBody() is not { } body) continue;
            foreach (var local in body.LocalVariables) Add(used, local.LocalType);
            Type[]? typeArguments = type.IsGenericTypeDefinition ? type.GetGenericArguments() : null;
            Type[]? methodArguments = method.IsGenericMethodDefinition ? method.GetGenericArguments() : null;
            foreach (int token in MemberTokens(body.GetILAsByteArray()!))
            {
                switch (type.Module.ResolveMember(token, typeArguments, methodArguments))
                {
                    case Type t: Add(used, t); break;
                    case MethodBase m:
                        if (m.DeclaringType is { } declaring) Add(used, declaring);
                        foreach (var argument in m.IsGenericMethod ? m.GetGenericArguments() : []) Add(used, argument);
                        break;
                    case FieldInfo f:
                        if (f.DeclaringType is { } owner) Add(used, owner);
                        break;
                }
            }
        }
        used.Remove(type);
        return used;
    }

    private static void Add(HashSet<Type> used, Type type)
    {
        if (type.IsGenericParameter || type.IsFunctionPointer) return;
        if (type.HasElementType)
        {
            Add(used, type.GetElementType()!);
            return;
        }
        if (type.IsGenericType && !type.IsGenericTypeDefinition)
        {
            foreach (var argument in type.GetGenericArguments()) Add(used, argument);
            type = type.GetGenericTypeDefinition();
        }
        used.Add(type);
    }

    /// <summary>The metadata tokens of the types, methods and fields an IL body references.</summary>
    private static IEnumerable<int> MemberTokens(byte[] il)
    {
        int at = 0;
        while (at < il.Length)
        {
            OpCode code = il[at] == 0xFE ? TwoByteCodes[il[at + 1]] : OneByteCodes[il[at]];
            at += code.Size;
            switch (code.OperandType)
            {
                case OperandType.InlineField or OperandType.InlineMethod or OperandType.InlineTok or OperandType.InlineType:
                    yield return BitConverter.ToInt32(il, at);
                    at += 4;
                    break;
                case OperandType.InlineSwitch:
                    at += 4 + 4 * BitConverter.ToInt32(il, at);
                    break;
                case OperandType.InlineNone: break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar: at += 1; break;
                case OperandType.InlineVar: at += 2; break;
                case OperandType.InlineI8 or OperandType.InlineR: at += 8; break;
                default: at += 4; break;
            }
        }
    }

    private static readonly OpCode[] OneByteCodes = new OpCode[256];
    private static readonly OpCode[] TwoByteCodes = new OpCode[256];

    static LayerRule()
    {
        foreach (var field in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            var code = (OpCode)field.GetValue(null)!;
            ushort value = unchecked((ushort)code.Value);
            if (code.Size == 1) OneByteCodes[value] = code;
            else TwoByteCodes[value & 0xFF] = code;
        }
    }

    [GeneratedRegex(@"`src/([A-Za-z.]+(?:/[A-Za-z]+)*)/`")]
    private static partial Regex FolderPattern();
}
