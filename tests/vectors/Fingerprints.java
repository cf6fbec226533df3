// SPDX-License-Identifier: Apache-2.0
// Prints, for each .avsc given, its Parsing Canonical Form and its CRC-64-AVRO
// fingerprint as computed by Apache Avro for Java. The output is committed as
// fingerprints.txt; the C unit tests check the project's codec against it.
// Run through tests/vectors/generate.
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

public class Fingerprints {
    public static void main(String[] args) throws Exception {
        for (String file : args) {
            Schema schema = new Schema.Parser().parse(Files.readString(Path.of(file)));
            String canonical = SchemaNormalization.toParsingForm(schema);
            long fp = SchemaNormalization.parsingFingerprint64(schema);
            System.out.printf("%s %016x %s%n",
                    Path.of(file).getFileName(), fp, canonical);
        }
    }
}
