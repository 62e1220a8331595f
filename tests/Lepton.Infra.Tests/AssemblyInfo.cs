using Lepton.Infra.Tests.Bicep;

// One set of Bicep snapshots for the whole run: each scenario is evaluated once, on first use.
[assembly: AssemblyFixture(typeof(Deployments))]
