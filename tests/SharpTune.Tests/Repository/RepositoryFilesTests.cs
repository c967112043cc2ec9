using System.Xml.Linq;

namespace SharpTune.Tests.Repository;

/// <summary>What the repository's own files promise a user: ignored working folders and a packed tool with a readme.</summary>
public sealed class RepositoryFilesTests
{
    [Theory]
    [InlineData("models/")]
    [InlineData("saves/")]
    [InlineData("output/")]
    public void LlamaFactoryWorkingFoldersAreIgnored(string folder) =>
        Assert.Contains(folder, File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, ".gitignore")));

    [Fact]
    public void TheToolPackageCarriesTheReadme()
    {
        var project = XDocument.Load(Path.Combine(TestPaths.RepoRoot, "src", "SharpTune.Cli", "SharpTune.Cli.csproj"));
        Assert.Equal("README.md", project.Descendants("PackageReadmeFile").Single().Value);
        var packed = project.Descendants("None").Single(e => e.Attribute("Pack")?.Value == "true");
        string readme = Path.GetFullPath(Path.Combine(TestPaths.RepoRoot, "src", "SharpTune.Cli", packed.Attribute("Include")!.Value.Replace('\\', '/')));
        Assert.Equal(Path.Combine(TestPaths.RepoRoot, "README.md"), readme);
        Assert.True(File.Exists(readme));
        Assert.Equal("\\", packed.Attribute("PackagePath")?.Value);
    }
}
