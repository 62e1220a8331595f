using Lepton.Testing;

[assembly: AssemblyFixture(typeof(AzuriteFixture))]
