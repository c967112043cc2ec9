using System.Text.Encodings.Web;
using System.Text.Json;

namespace SharpTune.Inference;

/// <summary>The JSON value kinds a schema's <c>type</c> allows (integer is a number without fraction or exponent).</summary>
[Flags]
public enum JsonKinds
{
    None = 0,
    Object = 1,
    Array = 2,
    String = 4,
    Number = 8,
    Integer = 16,
    Boolean = 32,
    Null = 64,
    Any = Object | Array | String | Number | Integer | Boolean | Null,
}

/// <summary>
/// The subset of JSON Schema that <see cref="JsonGrammar"/> enforces while a value is generated: <c>type</c> (one or a
/// list), <c>properties</c>, <c>required</c>, <c>additionalProperties</c> (false, true or a schema), <c>items</c>,
/// <c>enum</c>, <c>const</c> and <c>anyOf</c>. Purely informational keywords (description, title, default, examples,
/// $schema, $id, $comment, deprecated, readOnly, writeOnly) are ignored; any other keyword is refused by name, or,
/// compiled leniently, leaves its subschema unconstrained (any value passes).
/// </summary>
public sealed class JsonSchema
{
    private static readonly HashSet<string> Informational = new(StringComparer.Ordinal)
    {
        "description", "title", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly",
    };

    private static readonly HashSet<string> Enforced = new(StringComparer.Ordinal)
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf",
    };

    // Enum and const values are matched as their compact JSON text, non-ASCII characters written as themselves.
    private static readonly JsonWriterOptions LiteralWriting = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The kinds of value allowed (ignored when <see cref="Literals"/> or <see cref="AnyOf"/> is set).</summary>
    public JsonKinds Kinds { get; private init; } = JsonKinds.Any;
    /// <summary>The schema of each named property of an object.</summary>
    public IReadOnlyDictionary<string, JsonSchema> Properties { get; private init; } = new Dictionary<string, JsonSchema>();
    public IReadOnlyList<string> Required { get; private init; } = [];
    /// <summary>The schema of properties not in <see cref="Properties"/>; null when they are not allowed.</summary>
    public JsonSchema? AdditionalProperties => _closed ? null : _additional ?? Any;
    private JsonSchema? _additional;
    private bool _closed;
    /// <summary>The schema of an array's items.</summary>
    public JsonSchema Items => _items ?? Any;
    private JsonSchema? _items;
    /// <summary>enum / const: the value must be one of these compact JSON texts (UTF-8).</summary>
    public IReadOnlyList<byte[]>? Literals { get; private init; }
    /// <summary>anyOf: the value must match one of these.</summary>
    public IReadOnlyList<JsonSchema>? AnyOf { get; private init; }

    /// <summary>Any JSON value.</summary>
    public static readonly JsonSchema Any = new();

    /// <summary>Any JSON object: what <c>response_format: json_object</c> asks for.</summary>
    public static readonly JsonSchema AnyObject = new() { Kinds = JsonKinds.Object };

    /// <summary>
    /// Compiles <paramref name="schema"/>; <paramref name="path"/> names it in errors. Strictly, a keyword outside the
    /// subset is an <see cref="ArgumentException"/> naming it and where it is; leniently (a tool's parameters, which
    /// are a description first) the subschema holding it accepts any value instead.
    /// </summary>
    public static JsonSchema Compile(JsonElement schema, string path, bool lenient = false)
    {
        switch (schema.ValueKind)
        {
            case JsonValueKind.True:
                return Any;
            case JsonValueKind.False:
                throw new ArgumentException($"{path} is the schema false, which no value matches");
            case JsonValueKind.Object:
                break;
            default:
                throw new ArgumentException($"{path} must be a JSON schema object");
        }
        foreach (var field in schema.EnumerateObject())
            if (!Informational.Contains(field.Name) && !Enforced.Contains(field.Name))
                return lenient ? Any : throw new ArgumentException($"{path}.{field.Name}: the JSON schema keyword '{field.Name}' is not supported (supported: {string.Join(", ", Enforced)})");

        if (schema.TryGetProperty("anyOf", out var anyOf))
        {
            if (schema.EnumerateObject().Any(f => Enforced.Contains(f.Name) && f.Name != "anyOf"))
                return lenient ? Any : throw new ArgumentException($"{path}.anyOf: anyOf together with other constraining keywords is not supported");
            if (anyOf.ValueKind != JsonValueKind.Array || anyOf.GetArrayLength() == 0) throw new ArgumentException($"{path}.anyOf must be a non-empty array of schemas");
            return new JsonSchema { AnyOf = anyOf.EnumerateArray().Select((s, i) => Compile(s, $"{path}.anyOf[{i}]", lenient)).ToList() };
        }
        if (schema.TryGetProperty("const", out var constant))
            return new JsonSchema { Literals = [Literal(constant)] };
        if (schema.TryGetProperty("enum", out var values))
        {
            if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0) throw new ArgumentException($"{path}.enum must be a non-empty array");
            return new JsonSchema { Literals = values.EnumerateArray().Select(Literal).ToList() };
        }

        var kinds = schema.TryGetProperty("type", out var type) ? ReadKinds(type, $"{path}.type") : JsonKinds.Any;
        var properties = new Dictionary<string, JsonSchema>(StringComparer.Ordinal);
        if (schema.TryGetProperty("properties", out var props))
        {
            if (props.ValueKind != JsonValueKind.Object) throw new ArgumentException($"{path}.properties must be an object");
            foreach (var p in props.EnumerateObject()) properties[p.Name] = Compile(p.Value, $"{path}.properties.{p.Name}", lenient);
        }
        var required = new List<string>();
        if (schema.TryGetProperty("required", out var req))
        {
            if (req.ValueKind != JsonValueKind.Array || req.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String))
                throw new ArgumentException($"{path}.required must be an array of property names");
            required.AddRange(req.EnumerateArray().Select(r => r.GetString()!).Distinct());
        }
        JsonSchema? additional = null;
        bool closed = false;
        if (schema.TryGetProperty("additionalProperties", out var extra))
        {
            closed = extra.ValueKind == JsonValueKind.False;
            if (!closed) additional = Compile(extra, $"{path}.additionalProperties", lenient);
        }
        if (closed && required.FirstOrDefault(r => !properties.ContainsKey(r)) is string missing)
            throw new ArgumentException($"{path}.required names '{missing}', which additionalProperties false leaves no way to write");
        JsonSchema? items = null;
        if (schema.TryGetProperty("items", out var itemSchema))
            items = itemSchema.ValueKind == JsonValueKind.Array
                ? (lenient ? Any : throw new ArgumentException($"{path}.items: the JSON schema keyword 'items' as an array of schemas (tuple form) is not supported"))
                : Compile(itemSchema, $"{path}.items", lenient);
        return new JsonSchema { Kinds = kinds, Properties = properties, Required = required, _additional = additional, _closed = closed, _items = items };
    }

    private static JsonKinds ReadKinds(JsonElement type, string path)
    {
        static JsonKinds One(string name, string path) => name switch
        {
            "object" => JsonKinds.Object,
            "array" => JsonKinds.Array,
            "string" => JsonKinds.String,
            // A number may be an integer too.
            "number" => JsonKinds.Number | JsonKinds.Integer,
            "integer" => JsonKinds.Integer,
            "boolean" => JsonKinds.Boolean,
            "null" => JsonKinds.Null,
            _ => throw new ArgumentException($"{path}: unknown type '{name}' (object, array, string, number, integer, boolean or null)"),
        };
        return type.ValueKind switch
        {
            JsonValueKind.String => One(type.GetString()!, path),
            JsonValueKind.Array when type.GetArrayLength() > 0 && type.EnumerateArray().All(t => t.ValueKind == JsonValueKind.String) =>
                type.EnumerateArray().Aggregate(JsonKinds.None, (k, t) => k | One(t.GetString()!, path)),
            _ => throw new ArgumentException($"{path} must be a type name or a non-empty array of them"),
        };
    }

    private static byte[] Literal(JsonElement value)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, LiteralWriting)) value.WriteTo(writer);
        return buffer.ToArray();
    }
}
