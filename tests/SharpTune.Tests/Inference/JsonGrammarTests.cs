using System.Text;
using System.Text.Json;
using SharpTune.Inference;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Inference;

/// <summary>
/// <see cref="JsonGrammar"/>'s prefix validity, with System.Text.Json's parser as the reference for what is a whole
/// JSON value, and the schema subset of <see cref="JsonSchema"/>.
/// </summary>
public class JsonGrammarTests
{
    private static JsonSchema Schema(string json) => JsonSchema.Compile(JsonDocument.Parse(json).RootElement, "schema");

    /// <summary>How far the grammar follows <paramref name="text"/>: -1 when all of it, else the byte it refuses.</summary>
    private static int RefusedAt(JsonSchema schema, byte[] text)
    {
        var state = JsonGrammar.Start(schema);
        for (int i = 0; i < text.Length; i++)
        {
            state = state.Advance(text.AsSpan(i, 1));
            if (state is null) return i;
        }
        return -1;
    }

    private static bool ParsesAsJson(byte[] text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    public static TheoryData<string> ValidValues => new()
    {
        "{}", "[]", "0", "-0", "12", "-3.25", "1e5", "6.02E+23", "1.5e-7", "\"\"", "true", "false", "null",
        """{"a": 1, "b": [true, false, null], "c": {"d": "e"}}""",
        "{\n  \"nested\": [[1, 2], [], {\"x\": -0.5}]\n}",
        "\"caf\u00e9 \u4e2d\u6587 \U0001F600\"",
        """ "\u00e9\ud83d\ude00\n\t\"\\\/" """.Trim(),
        "[1,2,3]",
    };

    [Theory]
    [MemberData(nameof(ValidValues))]
    public void EveryPrefixOfAValidValueIsFollowedAndTheWholeCanEnd(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        Assert.True(ParsesAsJson(bytes), "the reference parser accepts it");
        var state = JsonGrammar.Start(JsonSchema.Any).Advance(bytes);
        Assert.NotNull(state);
        Assert.True(state.CanEnd);
        Assert.Equal(-1, RefusedAt(JsonSchema.Any, bytes));
    }

    public static TheoryData<string> InvalidValues => new()
    {
        "01", "-", "1.", ".5", "1e", "+1", "{,}", "{\"a\" 1}", "{\"a\": 1,}", "[1,]", "[1 2]", "tru", "nul", "\"abc", "'a'",
        "\"\\x\"", "\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "{\"a\": 1}}", " {} x", "\"a\nb\"",
    };

    [Theory]
    [MemberData(nameof(InvalidValues))]
    public void AnInvalidValueIsRefusedOrNeverEnds(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        var state = JsonGrammar.Start(JsonSchema.Any).Advance(bytes);
        bool acceptedWhole = state is not null && state.CanEnd;
        Assert.False(acceptedWhole);
        // Lone surrogate escapes parse in System.Text.Json but are no text; for the rest the reference agrees.
        if (!text.Contains("\\ud")) Assert.False(ParsesAsJson(bytes), "the reference parser refuses it too");
    }

    [Fact]
    public void InvalidUtf8InsideAStringIsRefusedAtItsByte()
    {
        Assert.Equal(1, RefusedAt(JsonSchema.Any, [(byte)'"', 0xC0, 0x80, (byte)'"']));
        Assert.Equal(2, RefusedAt(JsonSchema.Any, [(byte)'"', 0xE0, 0x80, 0x80, (byte)'"']));
        Assert.Equal(2, RefusedAt(JsonSchema.Any, [(byte)'"', 0xED, 0xA0, 0x80, (byte)'"']));
        Assert.Equal(2, RefusedAt(JsonSchema.Any, [(byte)'"', 0xC3, (byte)'"']));
    }

    [Fact]
    public void ATokenMayEndInsideACharacterAndTheNextOneCompletesIt()
    {
        byte[] emoji = Encoding.UTF8.GetBytes("\"\U0001F600\"");
        var state = JsonGrammar.Start(JsonSchema.Any).Advance(emoji.AsSpan(0, 3));
        Assert.NotNull(state);
        Assert.False(state.CanEnd);
        state = state.Advance(emoji.AsSpan(3));
        Assert.NotNull(state);
        Assert.True(state.MustEnd);
    }

    [Fact]
    public void AClosedObjectOrStringMustEndWhileATopLevelNumberMayGoOn()
    {
        Assert.True(JsonGrammar.Start(JsonSchema.Any).Advance("{\"a\": 1}")!.MustEnd);
        var number = JsonGrammar.Start(JsonSchema.Any).Advance("42")!;
        Assert.True(number.CanEnd);
        Assert.False(number.MustEnd);
        Assert.NotNull(number.Advance("7"));
        Assert.Null(number.Advance(" "));
    }

    [Fact]
    public void JsonObjectModeTakesOnlyAnObject()
    {
        Assert.NotNull(JsonGrammar.Start(JsonSchema.AnyObject).Advance("{\"k\": [1, \"x\"]}"));
        Assert.Null(JsonGrammar.Start(JsonSchema.AnyObject).Advance(" "));
        Assert.Null(JsonGrammar.Start(JsonSchema.AnyObject).Advance("["));
        Assert.Null(JsonGrammar.Start(JsonSchema.AnyObject).Advance("\"s\""));
    }

    [Fact]
    public void WhitespaceRunsAreBounded()
    {
        Assert.NotNull(JsonGrammar.Start(JsonSchema.Any).Advance("{" + new string(' ', JsonGrammar.MaxSpaces) + "}"));
        Assert.Null(JsonGrammar.Start(JsonSchema.Any).Advance("{" + new string(' ', JsonGrammar.MaxSpaces + 1)));
    }

    private const string Person = """
        {"type": "object", "title": "person", "description": "informational keywords are ignored",
         "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
                        "kind": {"const": "human"}, "score": {"type": ["number", "null"]}, "pet": {"anyOf": [{"type": "boolean"}, {"type": "object", "properties": {"n": {"type": "string"}}, "additionalProperties": false}]}},
         "required": ["name", "age"], "additionalProperties": false}
        """;

    [Theory]
    [InlineData("""{"name": "Ann", "age": 31}""")]
    [InlineData("""{"age": -2, "name": "B", "tags": ["a", "b", "a"], "kind": "human", "score": null}""")]
    [InlineData("""{"name": "C", "age": 0, "score": 1.5e3, "pet": true}""")]
    [InlineData("""{"name": "C", "age": 0, "pet": {"n": "Rex"}}""")]
    public void AValueValidForTheSchemaIsFollowedToItsEnd(string text)
    {
        var state = JsonGrammar.Start(Schema(Person)).Advance(text);
        Assert.NotNull(state);
        Assert.True(state.MustEnd);
    }

    [Theory]
    [InlineData("""{"name": "Ann", "age": 31.5}""", 25)]
    [InlineData("""{"name": "Ann", "agx""", 19)]
    [InlineData("""{"name": "Ann", "name""", 17)]
    [InlineData("""{"name": 5""", 9)]
    [InlineData("""{"name": "A", "age": 1, "tags": ["c""", 34)]
    [InlineData("""{"name": "A", "age": 1, "kind": "robot""", 33)]
    [InlineData("""{"name": "A", "age": 1, "score": "x""", 33)]
    [InlineData("""{"name": "A", "age": 1, "pet": {"m""", 33)]
    [InlineData("""{"name": "A"}""", 12)]
    [InlineData("""[""", 0)]
    public void AValueTheSchemaRefusesIsRefusedAtTheFirstByteThatBreaksIt(string text, int at)
    {
        Assert.Equal(at, RefusedAt(Schema(Person), Encoding.UTF8.GetBytes(text)));
    }

    [Fact]
    public void EnumValuesSharingAPrefixBothStayPossible()
    {
        var schema = Schema("""{"enum": [1, 10, "x"]}""");
        var one = JsonGrammar.Start(schema).Advance("1")!;
        Assert.True(one.CanEnd);
        Assert.False(one.MustEnd);
        Assert.True(one.Advance("0")!.MustEnd);
        Assert.Null(one.Advance("1"));
    }

    [Fact]
    public void AdditionalPropertiesTakeTheirSchemaAndKeysAreUnique()
    {
        var schema = Schema("""{"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}}""");
        Assert.True(JsonGrammar.Start(schema).Advance("""{"a": "s", "z": 3}""")!.MustEnd);
        Assert.Null(JsonGrammar.Start(schema).Advance("""{"z": "s"""));
        Assert.Null(JsonGrammar.Start(schema).Advance("""{"a": "s", "a":"""));
        // An escaped spelling of a declared key is still that key.
        Assert.Null(JsonGrammar.Start(schema).Advance("""{"\u0061": 1"""));
    }

    [Theory]
    [InlineData("""{"type": "string", "pattern": "^a"}""", "pattern", "\"b\"")]
    [InlineData("""{"type": "object", "properties": {"when": {"type": "string", "format": "date"}}}""", "format", """{"when": 3}""")]
    [InlineData("""{"$ref": "#/$defs/x"}""", "$ref", "5")]
    [InlineData("""{"type": "string", "minLength": 2}""", "minLength", "\"a\"")]
    [InlineData("""{"type": "array", "items": [{"type": "string"}]}""", "items", "[1]")]
    public void AKeywordOutsideTheSubsetIsRefusedByNameOrLenientlyLeavesItsSubschemaOpen(string json, string keyword, string lenientValue)
    {
        var e = Assert.Throws<ArgumentException>(() => Schema(json));
        Assert.Contains($"'{keyword}'", e.Message);
        var lenient = JsonSchema.Compile(JsonDocument.Parse(json).RootElement, "schema", lenient: true);
        Assert.True(JsonGrammar.Start(lenient).Advance(lenientValue)!.CanEnd);
    }

    [Fact]
    public void TheConstraintsShortcutsAllowExactlyWhatTheGrammarAllows()
    {
        var tokenizer = Tokenizer.FromDirectory(TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"));
        var tokens = new TokenBytes(tokenizer);
        var schema = Schema(Person);
        foreach (string prefix in new[] { "", "{", "{\"name\": \"Ann é", "{\"name\": \"A\", \"age\": 3", "{\"name\": \"A\", \"age\": 3, \"tags\": [" })
        {
            var constraint = new JsonConstraint(tokens, schema);
            foreach (int id in tokenizer.Encode(prefix)) constraint.Accept(id);
            var state = JsonGrammar.Start(schema).Advance(prefix)!;
            int allowed = 0;
            for (int id = 0; id < tokenizer.VocabSize; id++)
            {
                bool expected = tokens[id] is { } bytes && state.Advance(bytes) is not null;
                Assert.True(expected == constraint.Allows(id), $"after {prefix}: token {id} {tokenizer.IdToToken(id)}");
                if (expected) allowed++;
            }
            Assert.True(allowed > 0, $"after {prefix}: some token continues");
        }
    }
}
