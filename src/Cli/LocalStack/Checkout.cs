namespace Lepton.Cli.LocalStack;

/// <summary>The checkout the local stack runs from (it holds the pinned Azurite in node_modules).</summary>
public static class Checkout
{
    /// <summary>The repository root: the nearest folder holding the solution, above the binaries or the current folder.</summary>
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Lepton.Functions.sln")))
                {
                    return dir.FullName;
                }
            }
        }
        throw new Shared.ConfigurationException(
            "cannot find the Lepton checkout (Lepton.Functions.sln) above the current folder: run from the repository");
    }
}
