"""Row filtering of the training stream."""

from training.data import fits_decoder


def test_rows_whose_target_outgrows_the_decoder_are_left_out(tiny_processor):
    row = {"text": "hello world", "language": "en", "emotion": None, "gender": "female", "events": ["Speech"]}
    labels, _ = tiny_processor.build_target(**row)
    assert fits_decoder(row, tiny_processor, max_target_positions=len(labels))
    assert not fits_decoder(row, tiny_processor, max_target_positions=len(labels) - 1)
    long_row = {**row, "text": "hello world " * 200}
    assert not fits_decoder(long_row, tiny_processor, max_target_positions=256)
