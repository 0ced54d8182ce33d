"""The fraud predictor: a KServe model server speaking the Open Inference Protocol (v2) and v1."""
